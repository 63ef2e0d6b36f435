package dev.wsproxy.examples.quickstart;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocketHandshakeException;
import java.util.concurrent.ExecutionException;

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
        // Not port 0: the allowed origins name the port the proxy listens on, as they do with 8080 in main.
        int port;
        try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = free.getLocalPort();
        }
        try (WebSocketProxy proxy = QuickStart.proxy(port, URI.create("ws://127.0.0.1:" + connector.getLocalPort()))) {
            URI uri = URI.create("ws://127.0.0.1:" + proxy.start().getPort() + "/ws/echo");

            // The address the proxy binds and prints, and the name a browser user may type for it; 127.0.0.1 got 403.
            for (String origin : new String[] {"http://127.0.0.1:" + port, "http://localhost:" + port}) {
                assertThat(echo(uri, origin)).as(origin).isEqualTo("hello through wsproxy");
            }
            Throwable refused = catchThrowable(() -> echo(uri, "http://evil.example"));
            assertThat(refused).isInstanceOf(ExecutionException.class)
                    .cause().isInstanceOf(WebSocketHandshakeException.class);
            assertThat(((WebSocketHandshakeException) refused.getCause()).getResponse().statusCode()).isEqualTo(403);
        } finally {
            backend.stop();
        }
    }

    private static String echo(URI uri, String origin) throws Exception {
        return OneExchange.ask(HttpClient.newHttpClient().newWebSocketBuilder().header("Origin", origin), uri,
                "hello through wsproxy");
    }
}
