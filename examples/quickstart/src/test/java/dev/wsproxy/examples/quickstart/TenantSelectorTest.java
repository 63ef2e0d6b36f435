package dev.wsproxy.examples.quickstart;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.ExecutionException;

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

/**
 * {@link TenantSelector} in a real proxy, behind {@link SignedTokenAuthenticator}, in front of one Jetty backend per
 * tenant.
 */
class TenantSelectorTest {

    private static final byte[] SECRET = "a test secret of at least 32 bytes!".getBytes(StandardCharsets.UTF_8);

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

    @Test
    void sendsEachVerifiedTenantToItsOwnBackendAndRefusesOthersWith503() throws Exception {
        URI uri = start(true);

        for (int i = 0; i < 3; i++) {
            assertThat(ask(uri, token("green"), null)).isEqualTo("/green/chat");
            assertThat(ask(uri, token("blue"), null)).isEqualTo("/blue/chat");
        }
        // Exact, case included: Blue may be another tenant than blue.
        for (String tenant : new String[] {"red", "Blue", ""}) {
            assertRefusedWith503(uri, token(tenant), null);
        }
    }

    @Test
    void followsTheVerifiedTenantNotTheXTenantHeaderTheClientWrites() throws Exception {
        URI uri = start(true);

        // It was the header that counted: blue's user reached green's backend by asking for it.
        assertThat(ask(uri, token("blue"), "green")).isEqualTo("/blue/chat");
        assertThat(ask(uri, token("green"), "blue")).isEqualTo("/green/chat");
    }

    @Test
    void refusesEverySessionWith503WithoutAnAuthenticatorWhateverItsXTenantHeader() throws Exception {
        URI uri = start(false);

        for (String tenant : new String[] {"blue", "green", null}) {
            assertRefusedWith503(uri, null, tenant);
        }
    }

    /** Starts the blue and green backends and a proxy in front of them, with the authenticator or without. */
    private URI start(boolean authenticated) throws Exception {
        backends.setHandler(WebSocketUpgradeHandler.from(backends,
                c -> c.addMapping("/*", (rq, rs, cb) -> new PathEcho(rq.getHttpURI().getPath()))));
        ServerConnector blue = new ServerConnector(backends);
        ServerConnector green = new ServerConnector(backends);
        for (ServerConnector connector : new ServerConnector[] {blue, green}) {
            connector.setHost("127.0.0.1");
            backends.addConnector(connector);
        }
        backends.start();
        ProxyBuilder builder = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/",
                        Backend.of("ws://127.0.0.1:" + blue.getLocalPort() + "/blue/"),
                        Backend.of("ws://127.0.0.1:" + green.getLocalPort() + "/green/"))
                .backendSelector(new TenantSelector());
        if (authenticated) {
            builder.authenticator(new SignedTokenAuthenticator(SECRET, Clock.systemUTC()));
        }
        proxy = builder.build();
        return URI.create("ws://127.0.0.1:" + proxy.start().getPort() + "/ws/chat");
    }

    private static String token(String tenant) {
        return SignedTokenAuthenticator.issue(SECRET, "alice", tenant, Instant.now().plus(Duration.ofMinutes(5)));
    }

    private void assertRefusedWith503(URI uri, String token, String headerTenant) {
        assertThatThrownBy(() -> ask(uri, token, headerTenant))
                .isInstanceOf(ExecutionException.class)
                .cause().isInstanceOf(WebSocketHandshakeException.class)
                .satisfies(e -> assertThat(((WebSocketHandshakeException) e).getResponse().statusCode())
                        .as("token %s, X-Tenant %s", token, headerTenant).isEqualTo(503));
    }

    private String ask(URI uri, String token, String headerTenant) throws Exception {
        WebSocket.Builder builder = http.newWebSocketBuilder();
        if (token != null) {
            builder.header("Authorization", "Bearer " + token);
        }
        if (headerTenant != null) {
            builder.header("X-Tenant", headerTenant);
        }
        return OneExchange.ask(builder, uri, "which backend?");
    }
}
