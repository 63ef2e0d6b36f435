package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import javax.net.ssl.SSLSocket;

import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Holes a security review of the authentication, TLS and relay-limit work found, each provoked the way the review
 * did: plain HTTP slipping past a route's authenticator with a forged user header, tiny frames escaping the fragment
 * cap one per TLS record or network read, plain HTTP to a {@code wss://} backend ignoring {@link BackendTls}, a started
 * custom factory keeping TLS 1.1, trust-all combined with a client certificate, and an authenticator's
 * {@code Retry-After} overwritten.
 */
class SecurityRegressionTest {

    private final List<AutoCloseable> resources = new ArrayList<>();
    private WebSocketProxy proxy;
    private Clients clients;

    @AfterEach
    void tearDown() throws Exception {
        Clients.tearDown(proxy, clients, resources.toArray(AutoCloseable[]::new));
    }

    private <T extends AutoCloseable> T keep(T resource) {
        resources.add(resource);
        return resource;
    }

    private void start(ProxyBuilder builder) throws Exception {
        proxy = builder.listen("127.0.0.1", 0).build();
        proxy.start();
    }

    private static Authenticator bearer() {
        return Authenticator.of(request -> "good".equals(request.queryParameter("token"))
                ? AuthDecision.allow().withBackendHeader("X-User-Id", "42").withoutBackendHeader("Authorization")
                : AuthDecision.reject(401).withResponseHeader("WWW-Authenticate", "Bearer"));
    }

    private RawHttp.Response get(String target, String... headers) throws Exception {
        try (RawHttp http = RawHttp.connect(proxy)) {
            RawHttp.Request request = RawHttp.Request.plain("GET", target, RawHttp.host(proxy));
            for (int i = 0; i < headers.length; i += 2) {
                request.add(headers[i], headers[i + 1]);
            }
            return http.exchange(request);
        }
    }

    @Test
    void authenticatesPlainHttpTheRouteForwardsAndReplacesForgedUserHeadersInBothSpellings() throws Exception {
        TestBackend backend = keep(new TestBackend("b1"));
        start(ProxyBuilder.create().route("/", r -> r.backends(backend.backend()).authenticator(bearer())));

        RawHttp.Response refused = get("/poll", "X-User-Id", "admin");
        assertThat(refused.status()).isEqualTo(401);
        assertThat(refused.header("WWW-Authenticate")).isEqualTo("Bearer");
        assertThat(backend.httpConnections.get()).as("backend connections").isZero();

        RawHttp.Response allowed = get("/poll?token=good", "X-User-Id", "admin", "X_User_Id", "admin");
        assertThat(allowed.status()).isEqualTo(200);
        assertThat(allowed.bodyText()).endsWith(" uid:42 uid_:null");
    }

    @Test
    void removesTheHeadersAnAuthenticatorTakesAwayFromTheUpgrade() throws Exception {
        TestBackend backend = keep(new TestBackend("b1"));
        start(ProxyBuilder.create().route("/", r -> r.backends(backend.backend()).authenticator(bearer())));
        clients = new Clients();

        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/chat?token=good"),
                Map.of("Authorization", "Bearer secret", "X_User_Id", "admin"));

        TestBackend.Upgrade upgrade = backend.nextUpgrade();
        assertThat(upgrade.headers()).doesNotContainKeys("authorization", "x_user_id");
        assertThat(upgrade.header("X-User-Id")).isEqualTo("42");
        recorder.session.close();
        recorder.nextClose();
    }

    @Test
    void keepsAnAuthenticatorsOwnRetryAfter() throws Exception {
        TestBackend backend = keep(new TestBackend("b1"));
        start(ProxyBuilder.create().route("/", r -> r.backends(backend.backend()).authenticator(
                Authenticator.of(request -> AuthDecision.reject(429).withResponseHeader("Retry-After", "60")))));

        try (RawHttp http = RawHttp.connect(proxy)) {
            RawHttp.Response response = http.exchange(RawHttp.Request.upgrade("/chat", RawHttp.host(proxy)));
            assertThat(response.status()).isEqualTo(429);
            assertThat(response.header("Retry-After")).isEqualTo("60");
        }
    }

    @Test
    void closesTinyFramesSentOnePerNetworkReadAtTheFragmentCap() throws Exception {
        RawBackend backend = keep(RawBackend.recording());
        start(ProxyBuilder.create().maxFragmentsPerMessage(100).route("/", backend.backend()));
        clients = new Clients();
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/flood"))) {
            raw.sendRaw(masked(false, RawFrames.TEXT, "a"));
            assertThat(backend.frames.poll(10, TimeUnit.SECONDS)).isNotNull();
            int relayed = 0;
            RawFrames.Frame frame = null;
            for (int i = 0; i < 500; i++) {
                raw.sendRaw(masked(false, RawFrames.CONTINUATION, "b"));
                // The next frame goes only once this one was relayed: each is a network read of its own.
                frame = backend.frames.poll(10, TimeUnit.SECONDS);
                assertThat(frame).as("frame %s relayed or the session closed", i).isNotNull();
                if (frame.opcode() == RawFrames.CLOSE) {
                    break;
                }
                relayed++;
            }
            assertThat(frame.opcode()).as("the backend was told to go away").isEqualTo(RawFrames.CLOSE);
            assertThat(relayed).as("continuations relayed past a cap of 100").isBetween(99, 101);
            assertThat(raw.readClose().closeCode()).isEqualTo(1009);
        }
    }

    @Test
    void closesTinyFramesSentOnePerTlsRecordAtTheFragmentCap() throws Exception {
        RawBackend backend = keep(RawBackend.recording());
        start(ProxyBuilder.create().maxFragmentsPerMessage(100)
                .tls(ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD))
                .route("/", backend.backend()));
        try (SSLSocket socket = TestCertificates.LOCALHOST.socketTo(proxy.uri())) {
            OutputStream out = socket.getOutputStream();
            out.write(RawHttp.Request.upgrade("/flood", proxy.uri().getRawAuthority()).bytes());
            InputStream in = socket.getInputStream();
            StringBuilder head = new StringBuilder();
            while (!head.toString().endsWith("\r\n\r\n")) {
                int b = in.read();
                assertThat(b).as("the 101").isNotNegative();
                head.append((char) b);
            }
            assertThat(head.toString()).startsWith("HTTP/1.1 101");
            out.write(masked(false, RawFrames.TEXT, "a"));
            for (int i = 0; i < 2000; i++) {
                out.write(masked(false, RawFrames.CONTINUATION, "b")); // a TLS record each, back to back
            }
            out.flush();
            int relayed = 0;
            RawFrames.Frame frame;
            do {
                frame = backend.frames.poll(10, TimeUnit.SECONDS);
                assertThat(frame).as("a frame or the close").isNotNull();
                relayed++;
            } while (frame.opcode() != RawFrames.CLOSE);
            assertThat(relayed).as("frames relayed past a cap of 100").isLessThan(110);
        } catch (java.net.SocketException closedWhileWriting) {
            // The proxy closed the socket while the flood was still being written: the cap worked.
            assertThat(backend.frames.stream().filter(f -> f.opcode() != RawFrames.CLOSE).count()).isLessThan(110);
        }
    }

    @Test
    void forwardsPlainHttpToAWssBackendWithTheBackendTlsOfTheWebSocketLeg() throws Exception {
        TestBackend backend = keep(new TestBackend("tls", TestCertificates.LOCALHOST.server()));
        start(ProxyBuilder.create().backendTls(BackendTls.trustStore(TestCertificates.LOCALHOST.pem()))
                .route("/", backend.backend()));

        RawHttp.Response response = get("/plain");

        assertThat(response.status()).as("a private CA trusted for plain HTTP too").isEqualTo(200);
        assertThat(response.bodyText()).startsWith("plain:/plain ");
    }

    @Test
    void refusesAStartedCustomFactoryThatChoseTls11AndTrustAllWithAClientCertificate() throws Exception {
        SslContextFactory.Server started = TestCertificates.LOCALHOST.server();
        started.setIncludeProtocols("TLSv1.3", "TLSv1.2", "TLSv1.1");
        started.setExcludeProtocols();
        started.start();
        try {
            assertThatThrownBy(() -> ServerTls.custom(() -> started).newSslContextFactory())
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("TLSv1.1");
        } finally {
            started.stop();
        }
        assertThatThrownBy(() -> BackendTls.insecureTrustAll().withClientCertificate(
                TestCertificates.PROXY_CLIENT.keyStore(), TestCertificates.PASSWORD))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("insecureTrustAll");
    }

    /** A masked client frame. */
    private static byte[] masked(boolean fin, int opcode, String text) {
        return RawFrames.encode(fin, opcode, text.getBytes(StandardCharsets.UTF_8), true);
    }
}
