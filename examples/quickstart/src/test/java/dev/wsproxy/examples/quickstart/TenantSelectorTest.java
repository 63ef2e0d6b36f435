package dev.wsproxy.examples.quickstart;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.Backend;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.WebSocketProxy;

/** {@link TenantSelector} in a real proxy, in front of one Jetty backend per tenant. */
class TenantSelectorTest {

    /** Answers every text with the request path it was upgraded on. Public: Jetty binds it with method handles. */
    public static final class PathEcho implements Session.Listener.AutoDemanding {
        private final String path;
        private Session session;

        PathEcho(String path) {
            this.path = path;
        }

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
        }

        @Override
        public void onWebSocketText(String message) {
            session.sendText(path, Callback.NOOP);
        }
    }

    private final Server backends = new Server();
    private final HttpClient http = HttpClient.newHttpClient();
    private WebSocketProxy proxy;

    @AfterEach
    void stop() throws Exception {
        if (proxy != null) {
            proxy.close();
        }
        backends.stop();
    }


    private String ask(URI uri, String tenant) throws Exception {
        BlockingQueue<String> received = new LinkedBlockingQueue<>();
        WebSocket.Builder builder = http.newWebSocketBuilder();
        if (tenant != null) {
            builder.header("X-Tenant", tenant);
        }
        WebSocket socket = builder.buildAsync(uri, new WebSocket.Listener() {
            @Override
            public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
                received.add(data.toString());
                webSocket.request(1);
                return null;
            }
        }).get(10, TimeUnit.SECONDS);
        socket.sendText("which backend?", true);
        String answer = received.poll(10, TimeUnit.SECONDS);
        socket.sendClose(WebSocket.NORMAL_CLOSURE, "").get(10, TimeUnit.SECONDS);
        return answer;
    }

    @Test
    void sendsEachTenantToItsOwnBackendAndRefusesOthersWith503() throws Exception {
        backends.setHandler(WebSocketUpgradeHandler.from(backends,
                c -> c.addMapping("/*", (rq, rs, cb) -> new PathEcho(rq.getHttpURI().getPath()))));
        ServerConnector blue = new ServerConnector(backends);
        ServerConnector green = new ServerConnector(backends);
        for (ServerConnector connector : new ServerConnector[] {blue, green}) {
            connector.setHost("127.0.0.1");
            backends.addConnector(connector);
        }
        backends.start();
        proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/",
                        Backend.of("ws://127.0.0.1:" + blue.getLocalPort() + "/blue/"),
                        Backend.of("ws://127.0.0.1:" + green.getLocalPort() + "/green/"))
                .backendSelector(new TenantSelector())
                .build();
        URI uri = URI.create("ws://127.0.0.1:" + proxy.start().getPort() + "/ws/chat");

        for (int i = 0; i < 3; i++) {
            assertThat(ask(uri, "green")).isEqualTo("/green/chat");
            assertThat(ask(uri, "blue")).isEqualTo("/blue/chat");
        }
        for (String tenant : new String[] {"red", null}) {
            assertThatThrownBy(() -> ask(uri, tenant))
                    .isInstanceOf(ExecutionException.class)
                    .cause().isInstanceOf(WebSocketHandshakeException.class)
                    .satisfies(e -> assertThat(((WebSocketHandshakeException) e).getResponse().statusCode())
                            .isEqualTo(503));
        }
    }
}
