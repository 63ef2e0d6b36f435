package dev.wsproxy.examples.quickstart;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;
import org.junit.jupiter.api.Test;

import dev.wsproxy.WebSocketProxy;

class QuickStartTest {

    /** Echoes text. Public: Jetty binds endpoint methods with method handles. */
    public static final class Echo implements Session.Listener.AutoDemanding {
        private Session session;

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
        }

        @Override
        public void onWebSocketText(String message) {
            session.sendText(message, Callback.NOOP);
        }
    }

    @Test
    void proxiesToTheBackendAndChecksTheOrigin() throws Exception {
        Server backend = new Server();
        ServerConnector connector = new ServerConnector(backend);
        connector.setHost("127.0.0.1");
        backend.addConnector(connector);
        backend.setHandler(WebSocketUpgradeHandler.from(backend, c -> c.addMapping("/*", (rq, rs, cb) -> new Echo())));
        backend.start();
        try (WebSocketProxy proxy = QuickStart.proxy(0, URI.create("ws://127.0.0.1:" + connector.getLocalPort()))) {
            URI bound = proxy.start();
            BlockingQueue<String> received = new LinkedBlockingQueue<>();
            WebSocket socket = HttpClient.newHttpClient().newWebSocketBuilder()
                    .header("Origin", "http://localhost:0")
                    .buildAsync(URI.create("ws://127.0.0.1:" + bound.getPort() + "/ws/echo"), new WebSocket.Listener() {
                        @Override
                        public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
                            received.add(data.toString());
                            webSocket.request(1);
                            return null;
                        }
                    }).get(10, TimeUnit.SECONDS);
            socket.sendText("hello through wsproxy", true);
            assertThat(received.poll(10, TimeUnit.SECONDS)).isEqualTo("hello through wsproxy");
            socket.sendClose(WebSocket.NORMAL_CLOSURE, "").get(10, TimeUnit.SECONDS);
        } finally {
            backend.stop();
        }
    }
}
