package dev.wsproxy.examples.standalone;

import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;

/**
 * A Jetty WebSocket server on a free port that answers each text message with {@code TAG:PATH:MESSAGE}, except
 * {@code push:N:SIZE}, which it answers with N binary messages of SIZE bytes, each sent once the previous one is
 * written.
 */
final class EchoBackend {

    private final Server server = new Server();
    private final ServerConnector connector = new ServerConnector(server);
    private final AtomicLong pushedBytes = new AtomicLong();

    EchoBackend(String tag) {
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(WebSocketUpgradeHandler.from(server, container -> container.addMapping("/*",
                (request, response, callback) -> new Echo(tag, request.getHttpURI().getPath(), pushedBytes))));
    }

    URI start() throws Exception {
        server.start();
        return URI.create("ws://127.0.0.1:" + connector.getLocalPort());
    }

    void stop() throws Exception {
        server.stop();
    }

    /** Waits until the pushes stop progressing: every buffer between the backend and a reader that stopped is full. */
    void awaitPushStalled() {
        long[] last = {-1};
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(500)).until(() -> {
            long now = pushedBytes.get();
            boolean stalled = now > 0 && now == last[0];
            last[0] = now;
            return stalled;
        });
    }

    /** Echoes text messages, tagged. */
    public static final class Echo implements Session.Listener.AutoDemanding {
        private final String tag;
        private final String path;
        private final AtomicLong pushedBytes;
        private Session session;

        Echo(String tag, String path, AtomicLong pushedBytes) {
            this.tag = tag;
            this.path = path;
            this.pushedBytes = pushedBytes;
        }

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
        }

        @Override
        public void onWebSocketText(String message) {
            if (message.startsWith("push:")) {
                String[] parts = message.split(":");
                push(Integer.parseInt(parts[1]), Integer.parseInt(parts[2]));
            } else {
                session.sendText(tag + ":" + path + ":" + message, Callback.NOOP);
            }
        }

        private void push(int count, int size) {
            if (count > 0) {
                session.sendBinary(ByteBuffer.allocate(size), Callback.from(() -> {
                    pushedBytes.addAndGet(size);
                    push(count - 1, size);
                }, failure -> { }));
            }
        }

        @Override
        public void onWebSocketError(Throwable cause) {
            // The proxy dropped the connection: expected in the tests that stop it.
        }
    }
}
