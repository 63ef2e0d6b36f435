package dev.wsproxy.examples.quickstart;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Base64;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.WebSocketProxy;

/**
 * {@link SignedTokenAuthenticator} in a real proxy, in front of a Jetty backend that answers with the user it was told
 * about.
 */
class SignedTokenAuthenticatorTest {

    private static final byte[] SECRET = "a test secret of at least 32 bytes!".getBytes(StandardCharsets.UTF_8);
    private static final Instant NOW = Instant.parse("2026-11-21T12:00:00Z");

    /**
     * Answers every text with the {@code X-User-Id} of its upgrade request, and its {@code Authorization} if it has
     * one. Public: Jetty binds it.
     */
    public static final class WhoAmI implements Session.Listener.AutoDemanding {
        private final String user;
        private final String authorization;
        private Session session;

        WhoAmI(String user, String authorization) {
            this.user = user;
            this.authorization = authorization;
        }

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
        }

        @Override
        public void onWebSocketText(String message) {
            session.sendText("user=" + user + (authorization == null ? "" : " authorization=" + authorization),
                    Callback.NOOP);
        }
    }

    private final Server backend = new Server();
    private final HttpClient http = HttpClient.newHttpClient();
    private final BlockingQueue<Object> tenantsSelected = new LinkedBlockingQueue<>();
    private WebSocketProxy proxy;
    private URI uri;

    @BeforeEach
    void start() throws Exception {
        ServerConnector connector = new ServerConnector(backend);
        connector.setHost("127.0.0.1");
        backend.addConnector(connector);
        backend.setHandler(WebSocketUpgradeHandler.from(backend,
                c -> c.addMapping("/*", (rq, rs, cb) -> new WhoAmI(rq.getHeaders().get("X-User-Id"),
                        rq.getHeaders().get("Authorization")))));
        backend.start();
        Backend only = Backend.of("ws://127.0.0.1:" + connector.getLocalPort());
        proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/", only)
                .authenticator(new SignedTokenAuthenticator(SECRET, Clock.fixed(NOW, ZoneOffset.UTC)))
                .backendSelector(context -> {
                    tenantsSelected.add(String.valueOf(context.attribute("tenant")));
                    return BackendSelector.roundRobin().select(context);
                })
                .build();
        uri = URI.create("ws://127.0.0.1:" + proxy.start().getPort() + "/ws/chat");
    }

    @AfterEach
    void stop() throws Exception {
        proxy.close();
        backend.stop();
    }

    @Test
    void letsAValidTokenThroughAsItsUserAndTenant() throws Exception {
        String token = SignedTokenAuthenticator.issue(SECRET, "alice", "blue", NOW.plus(Duration.ofMinutes(5)));

        assertThat(ask(query(token), null)).isEqualTo("user=alice");
        assertThat(tenantsSelected.poll(10, TimeUnit.SECONDS)).isEqualTo("blue");
        // A header the client sets itself is replaced by the verified one, and the token stays with the proxy.
        assertThat(ask(uri, "Bearer " + token)).isEqualTo("user=alice");
    }

    @Test
    void sendsAUserNameOutsideAsciiPercentEncodedSoItArrivesIntact() throws Exception {
        // Raw, such a name was refused by AuthDecision (a header carries visible ASCII only), and before that the wire
        // turned each character above U+00FF into a space: "alice\u738B" reached the backend as "alice".
        String token = SignedTokenAuthenticator.issue(SECRET, "alice\u738B", "blue", NOW.plus(Duration.ofMinutes(5)));

        assertThat(ask(query(token), null)).isEqualTo("user=alice%E7%8E%8B");
        assertThat(SignedTokenAuthenticator.percentEncoded("a b%~é")).isEqualTo("a%20b%25~%C3%A9");
    }

    @Test
    void refusesMissingForgedAndExpiredTokensWith401BeforeAnyBackendConnection() throws Exception {
        String expired = SignedTokenAuthenticator.issue(SECRET, "alice", "blue", NOW.minusSeconds(1));
        String forged = SignedTokenAuthenticator.issue("another secret, also 32 bytes long".getBytes(
                StandardCharsets.UTF_8), "mallory", "blue", NOW.plus(Duration.ofMinutes(5)));

        assertThat(refused(uri).headers().firstValue("WWW-Authenticate")).hasValue("Bearer realm=\"ws\"");
        for (String token : new String[] {expired, forged, "not-a-token", "a.b.c"}) {
            assertThat(refused(query(token)).headers().firstValue("WWW-Authenticate"))
                    .hasValue("Bearer realm=\"ws\", error=\"invalid_token\"");
        }
        assertThat(tenantsSelected).as("selections: the backend was never asked").isEmpty();
    }

    @Test
    void refusesEveryOtherSpellingOfAValidTokenWith401() throws Exception {
        // 22 bytes of payload (30 characters, 4 unused bits) and 32 of HMAC (43 characters, 2 unused bits).
        String token = SignedTokenAuthenticator.issue(SECRET, "alice", "green", NOW.plus(Duration.ofMinutes(5)));
        String payload = token.substring(0, token.indexOf('.'));
        String signature = token.substring(token.indexOf('.') + 1);
        assertThat(payload).hasSize(30);
        assertThat(signature).hasSize(43);

        for (String respelled : new String[] {
            payload + "." + otherLastCharacter(signature),
            payload + "." + signature + "=",
            otherLastCharacter(payload) + "." + signature,
            payload + "==." + signature,
        }) {
            // The same bytes, which the decoder takes: a revocation list or replay cache keyed on the token string
            // would not know this token.
            String[] parts = respelled.split("\\.");
            assertThat(Base64.getUrlDecoder().decode(parts[0])).isEqualTo(Base64.getUrlDecoder().decode(payload));
            assertThat(Base64.getUrlDecoder().decode(parts[1])).isEqualTo(Base64.getUrlDecoder().decode(signature));
            assertThat(refused(query(respelled)).headers().firstValue("WWW-Authenticate")).as(respelled)
                    .hasValue("Bearer realm=\"ws\", error=\"invalid_token\"");
        }
        assertThat(ask(query(token), null)).as("the token as issued").isEqualTo("user=alice");
    }

    /** The text with its last base64url character changed in its lowest bit, one the decoder ignores here. */
    private static String otherLastCharacter(String base64url) {
        String alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int last = alphabet.indexOf(base64url.charAt(base64url.length() - 1));
        return base64url.substring(0, base64url.length() - 1) + alphabet.charAt(last ^ 1);
    }

    private URI query(String token) {
        return URI.create(uri + "?access_token=" + URLEncoder.encode(token, StandardCharsets.UTF_8));
    }

    private HttpResponse<?> refused(URI target) {
        Throwable failure = catchThrowable(() -> ask(target, null));
        assertThat(failure).isInstanceOf(ExecutionException.class)
                .cause().isInstanceOf(WebSocketHandshakeException.class);
        HttpResponse<?> response = ((WebSocketHandshakeException) failure.getCause()).getResponse();
        assertThat(response.statusCode()).isEqualTo(401);
        return response;
    }

    private String ask(URI target, String authorization) throws Exception {
        WebSocket.Builder builder = http.newWebSocketBuilder().header("X-User-Id", "admin");
        if (authorization != null) {
            builder.header("Authorization", authorization);
        }
        return OneExchange.ask(builder, target, "who am I?");
    }
}
