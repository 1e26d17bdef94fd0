// edgetcd.v1.BrowserWatch: one watcher per server-streaming call, for clients
// that cannot open a bidirectional stream (browsers over HTTP/1.1, through
// gRPC-Web or Connect). The same session as the bidirectional Watch, so the
// same guarantees: every event, in order, a revision never split. The stream
// ends when the client cancels or when the watcher is canceled (a compacted
// start revision, or a create etcd refuses).
import type { ServiceImpl } from "@connectrpc/connect";
import type { BrowserWatch } from "../gen/edgetcd/v1/edgetcd_pb.ts";
import { callerOf } from "./auth-context.ts";
import { WatchSession, watchRefusal, type WatchBackend } from "./watch-service.ts";

export function browserWatchService(server: WatchBackend, fragmentBytes: number): ServiceImpl<typeof BrowserWatch> {
  return {
    async *watch(request, context) {
      const session = new WatchSession(server, fragmentBytes, watchRefusal(server, callerOf(context)));
      try {
        session.create(request);
        for await (const response of session.responses(context.signal)) {
          yield response;
          if (response.canceled) return;
        }
      } finally {
        session.close();
      }
    },
  };
}
