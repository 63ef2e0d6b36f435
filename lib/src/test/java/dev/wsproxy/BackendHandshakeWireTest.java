package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.RawHttp.Request;

/**
 * The backend handshake on the wire, as the proxy's own client writes and reads it: the request it sends, the bytes
 * a backend writes right behind its {@code 101}, refusal bodies framed by chunks or by the end of the connection, a
 * response cut short, and a backend named by a host name.
 */
class BackendHandshakeWireTest {

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final RecordingListener listener = new RecordingListener();
    private WebSocketProxy proxy;

    @AfterEach
    void stop() throws Exception {
        Clients.stopAfterLeakCheck(proxy, resources);
    }

    private <T extends AutoCloseable> T resource(T resource) {
        resources.add(resource);
        return resource;
    }

    private void startProxy(Backend backend) throws Exception {
        startProxy(backend, BackendTls.systemTrust());
    }

    private void startProxy(Backend backend, BackendTls tls) throws Exception {
        proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .backendTls(tls)
                .timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofSeconds(5)).build())
                .listener(listener)
                .route("/ws/", backend)
                .build();
        proxy.start();
    }

    private Request upgrade(String target) {
        return Request.upgrade(target, RawHttp.host(proxy));
    }

    @Test
    void sendsALeanUpgradeRequestWithThePathAndQuery() throws Exception {
        RawBackend backend = resource(RawBackend.recording());
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(upgrade("/ws/chat?room=1").add("Sec-WebSocket-Protocol", "a, b")
                    .add("X-Custom", "kept")).status()).isEqualTo(101);
            RawBackend.Request request = backend.nextRequest();

            assertThat(request.requestLine()).isEqualTo("GET /ws/chat?room=1 HTTP/1.1");
            assertThat(request.header("Host")).as("the client's, preserved").isEqualTo(RawHttp.host(proxy));
            assertThat(request.header("Upgrade")).isEqualTo("websocket");
            assertThat(request.header("Connection")).isEqualTo("Upgrade");
            assertThat(request.header("Sec-WebSocket-Version")).isEqualTo("13");
            assertThat(request.header("Sec-WebSocket-Key")).isNotEqualTo(RawFrames.SAMPLE_KEY).hasSize(24);
            assertThat(request.header("Sec-WebSocket-Protocol")).isEqualTo("a, b");
            assertThat(request.header("X-Custom")).isEqualTo("kept");
            assertThat(request.header("User-Agent")).isNull();
            assertThat(request.header("Accept-Encoding")).isNull();
            assertThat(request.header("Sec-WebSocket-Extensions")).isNull();
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
    }

    @Test
    void relaysFramesTheBackendWroteRightBehindIts101() throws Exception {
        String early = new String(RawFrames.text("early", false), StandardCharsets.ISO_8859_1)
                + new String(RawFrames.text("second", false), StandardCharsets.ISO_8859_1);
        RawBackend backend = resource(RawBackend.answering(
                request -> RawBackend.switching(null).response(request) + early));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(upgrade("/ws/chat")).status()).isEqualTo(101);

            assertThat(client.readFrame().text()).isEqualTo("early");
            assertThat(client.readFrame().text()).isEqualTo("second");
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.nextEnd(5)).isEqualTo("close:1000");
    }

    @Test
    void relaysAChunkedRefusalBody() throws Exception {
        RawBackend backend = resource(RawBackend.answering(RawBackend.raw("HTTP/1.1 403 Forbidden\r\n"
                + "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-Reason: chunks\r\n\r\n"
                + "6\r\ndenied\r\n9\r\n in parts\r\n0\r\n\r\n")));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(response.status()).isEqualTo(403);
            assertThat(response.header("X-Reason")).isEqualTo("chunks");
            assertThat(response.header("Transfer-Encoding")).isNull();
            assertThat(response.bodyText()).isEqualTo("denied in parts");
        }
        assertThat(backend.nextEnd(5)).isIn("eof", "reset");
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
    }

    @Test
    void relaysARefusalBodyDelimitedByTheEndOfTheConnection() throws Exception {
        RawBackend backend = resource(RawBackend.answeringThenClosing(RawBackend.raw(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nback later")));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(response.status()).isEqualTo(503);
            assertThat(response.bodyText()).isEqualTo("back later");
        }
    }

    @Test
    void relaysARefusalWhoseHeadBreaksAfterItsStatusLineWithThatStatus() throws Exception {
        RawBackend backend = resource(RawBackend.answeringThenClosing(RawBackend.raw(
                "HTTP/1.1 403 Forbidden\r\nX-Reason: policy\r\nno colon in this line\r\n\r\n")));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(upgrade("/ws/chat")).status()).isEqualTo(403);
        }
    }

    @Test
    void relaysARefusalWithAHeaderTooLargeForTheClientsConnectionWithoutThatHeader() throws Exception {
        // 20,000 bytes in one header: more than Jetty writes in a response head (16 KiB by default), less than the
        // proxy reads (64 KiB). The headers that fit are relayed, also after the one dropped.
        RawBackend backend = resource(RawBackend.answering(RawBackend.raw("HTTP/1.1 403 Forbidden\r\n"
                + "Content-Type: text/plain\r\nX-Big: " + "a".repeat(20_000) + "\r\nX-Small: kept\r\n"
                + "Content-Length: 6\r\n\r\ndenied")));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(response.status()).as("%s", response).isEqualTo(403);
            assertThat(response.bodyText()).isEqualTo("denied");
            assertThat(response.header("X-Big")).isNull();
            assertThat(response.header("X-Small")).isEqualTo("kept");
            assertThat(response.header("Content-Type")).isEqualTo("text/plain");
            assertThat(response.header("Connection")).containsIgnoringCase("close");
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(403);
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
    }

    @Test
    void relaysARefusalWhoseHeadGoesPastTheProxysLimitWithTheHeadersThatFit() throws Exception {
        // 800 headers of 100 bytes: the proxy stops reading at 64 KiB and relays the 401 as far as it came, with
        // what the client's connection can write of it.
        StringBuilder head = new StringBuilder("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n");
        for (int i = 0; i < 800; i++) {
            head.append(String.format("X-Pad-%03d: %s\r\n", i, "p".repeat(86)));
        }
        RawBackend backend = resource(RawBackend.answering(RawBackend.raw(head.append("\r\n").toString())));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(response.status()).as("%s", response).isEqualTo(401);
            assertThat(response.header("WWW-Authenticate")).isEqualTo("Bearer");
            assertThat(response.header("X-Pad-000")).isEqualTo("p".repeat(86));
            assertThat(response.header("X-Pad-799")).isNull();
            assertThat(response.bodyText()).isEmpty();
        }
        assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(401);
    }

    /** Answers after which the backend closes: none at all (empty), a 101 cut short, not HTTP, a broken interim. */
    @ParameterizedTest
    @ValueSource(strings = {"", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConn",
            "\u0015\u0003\u0003\u0000\u0002\u0002\u0032", "HTTP/1.1 103 Early Hints\r\nno colon in this line\r\n\r\n"})
    void answers502WhenTheBackendGivesNoValidAnswer(String answer) throws Exception {
        RawBackend backend = resource(RawBackend.answeringThenClosing(
                answer.isEmpty() ? request -> null : RawBackend.raw(answer)));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(response.status()).isEqualTo(502);
            assertThat(response.header("Sec-WebSocket-Accept")).isNull();
        }
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).hasSize(1);
    }

    @Test
    void writesTheClientsLatin1HeaderValuesAsTheyCame() throws Exception {
        RawBackend backend = resource(RawBackend.recording());
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(upgrade("/ws/chat").add("X-Client", "caf\u00e9 \u00a0!")).status())
                    .isEqualTo(101);
        }
        // Bytes above 0x7F (RFC 9110's obs-text) go on as they came, in ISO-8859-1 as Jetty's generator writes them.
        // An authenticator's values never have them: AuthDecision refuses all but visible ASCII, spaces and tabs.
        assertThat(backend.nextRequest().header("X-Client")).isEqualTo("caf\u00e9 \u00a0!");
    }

    @Test
    void connectsToABackendNamedByAHostName() throws Exception {
        TestBackend backend = resource(new TestBackend("named"));
        // localhost may resolve to ::1 first, where nothing listens: the next address is tried.
        startProxy(Backend.of("ws://localhost:" + backend.port()));
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(upgrade("/ws/chat")).status()).isEqualTo(101);
            client.send(RawFrames.text("hello", true));
            assertThat(client.readFrame().text()).endsWith("hello");
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.upgrades).hasSize(1);
    }

    @Test
    void verifiesAWssBackendNamedByAHostNameAgainstThatName() throws Exception {
        TestBackend backend = resource(new TestBackend("named-tls", TestCertificates.LOCALHOST.server()));
        startProxy(Backend.of("wss://localhost:" + backend.port()),
                BackendTls.trustStore(TestCertificates.LOCALHOST.pem()));
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(upgrade("/ws/chat")).status()).isEqualTo(101);
            client.send(RawFrames.text("over tls", true));
            assertThat(client.readFrame().text()).isEqualTo("over tls");
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.upgrades).hasSize(1);
    }
}
