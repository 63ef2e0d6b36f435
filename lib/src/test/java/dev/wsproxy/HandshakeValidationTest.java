package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.RawHttp.Request;

/**
 * The client's handshake is checked before anything else (RFC 6455 section 4.2.1; matrix rows H1, H4 to H7, H10,
 * H11, H13): a malformed upgrade gets {@code 400}, a wrong version {@code 426} with {@code Sec-WebSocket-Version: 13},
 * always with {@code Connection: close}, and the backend never sees a connection, nor any byte pipelined after the
 * refused request. (An {@code Upgrade} offer for another protocol, like {@code h2c}, is plain HTTP: see
 * {@link PlainHttpTest}.)
 */
class HandshakeValidationTest {

    private TestBackend backend;
    private RecordingListener listener;
    private NextHandler next;
    /** What the route's origin validator and authenticator saw, in order; both allow everything. */
    private final List<String> hooks = new CopyOnWriteArrayList<>();
    private WebSocketProxy proxy;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        listener = new RecordingListener();
        next = new NextHandler();
        proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/", r -> r.backends(backend.backend())
                        .originValidator((origin, request) -> hooks.add("origin " + origin))
                        .authenticator(Authenticator.of(request -> {
                            hooks.add("authenticator " + request.header("Authorization"));
                            return AuthDecision.allow();
                        })))
                .listener(listener)
                .nextHandler(next)
                .build();
        proxy.start();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, null, backend);
    }

    private Request upgrade(String target) {
        return Request.upgrade(target, RawHttp.host(proxy));
    }

    /** The positive control for every refusal below: the unmodified raw request is upgraded. */
    @Test
    void upgradesTheUnmodifiedRawHandshakeWithTheRfcSampleAccept() throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(response.header("Sec-WebSocket-Accept")).isEqualTo(RawFrames.SAMPLE_ACCEPT);
            assertThat(response.header("Upgrade")).isEqualToIgnoringCase("websocket");
            assertThat(response.header("Connection")).containsIgnoringCase("upgrade");
            assertThat(response.header("Sec-WebSocket-Extensions")).isNull();
            TestBackend.Upgrade seen = backend.nextUpgrade();
            assertThat(seen.header("Sec-WebSocket-Key")).as("backend key").isNotNull()
                    .isNotEqualTo(RawFrames.SAMPLE_KEY);

            client.sendText("hello");
            assertThat(client.readFrame().text()).isEqualTo("hello");
            assertThat(client.closeHandshake(1000, "done").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1000, "done"));
        assertThat(listener.all(RecordingListener.Rejected.class)).isEmpty();
    }

    static Stream<Arguments> malformedUpgrades() {
        byte[] fifteen = new byte[15];
        byte[] seventeen = new byte[17];
        return Stream.of(
                malformed("POST", r -> r.method("POST").add("Content-Length", "0")),
                malformed("PUT", r -> r.method("PUT").add("Content-Length", "0")),
                malformed("HEAD", r -> r.method("HEAD")),
                malformed("HTTP/1.0", r -> r.version("HTTP/1.0")),
                malformed("no Sec-WebSocket-Key", r -> r.remove("Sec-WebSocket-Key")),
                malformed("empty Sec-WebSocket-Key", r -> r.set("Sec-WebSocket-Key", "")),
                malformed("short Sec-WebSocket-Key", r -> r.set("Sec-WebSocket-Key", "AAAA")),
                malformed("15-byte Sec-WebSocket-Key",
                        r -> r.set("Sec-WebSocket-Key", Base64.getEncoder().encodeToString(fifteen))),
                malformed("17-byte Sec-WebSocket-Key",
                        r -> r.set("Sec-WebSocket-Key", Base64.getEncoder().encodeToString(seventeen))),
                malformed("non-base64 Sec-WebSocket-Key", r -> r.set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!==")),
                malformed("two Sec-WebSocket-Keys", r -> r.add("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")),
                malformed("Content-Length body", r -> r.add("Content-Length", "5").body("hello")),
                malformed("chunked body", r -> r.add("Transfer-Encoding", "chunked").body("5\r\nhello\r\n0\r\n\r\n")));
    }

    private static Arguments malformed(String name, UnaryOperator<Request> mutation) {
        return Arguments.of(name, mutation);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("malformedUpgrades")
    void refusesMalformedUpgradeWith400BeforeConnecting(String name, UnaryOperator<Request> mutation)
            throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(mutation.apply(upgrade("/ws/chat")));

            assertRefusedBeforeConnecting(response, 400);
            assertThat(client.closedWithin(Duration.ofSeconds(5))).as("connection closed after the 400").isTrue();
        }
    }

    /**
     * A route is matched on the path with dot segments resolved, but an authenticator saw the path as sent, as did a
     * backend without a base path: a check on {@code /ws/admin/} passed {@code /ws/x/../admin/panel}, which the
     * backend served as {@code /ws/admin/panel}. Such paths are refused; dots inside names are not segments. (Jetty
     * refuses {@code ..;p} and encoded dots itself by default; UpgradeChecksTest has those spellings.)
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"/ws/x/../admin/panel", "/ws/./chat", "/ws/chat/..", "/other/../ws/chat",
            "/ws/x/../admin?q=1"})
    void refusesAPathWithDotSegmentsWith400BeforeConnecting(String target) throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade(target));

            assertRefusedBeforeConnecting(response, 400);
        }
        assertThat(listener.first(RecordingListener.Rejected.class).reason()).isEqualTo("path with dot segments");
    }

    /**
     * The proxy, the authenticator and the origin validator read the first of two {@code Authorization} or
     * {@code Origin} lines, and the backend got both: one that reads the last saw a credential or an origin nobody
     * checked. Refused as nginx refuses a repeated {@code Authorization}; RFC 6454 section 7.2 lets a browser send one
     * {@code Origin}.
     */
    @ParameterizedTest(name = "{0}: {2}, {1}: {3}")
    @CsvSource({
        "Authorization, Authorization, Bearer mine, Bearer admin, repeated Authorization header",
        "Authorization, AUTHORIZATION, Bearer mine, Bearer admin, repeated Authorization header",
        "Authorization, Authorization, Bearer mine, '', repeated Authorization header",
        "Origin, Origin, https://app.example, https://evil.example, repeated Origin header",
        "Origin, origin, https://app.example, https://evil.example, repeated Origin header"})
    void refusesARepeatedAuthorizationOrOriginWith400BeforeAnyHook(String name, String again, String first,
            String second, String reason) throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat").add(name, first).add(again, second));

            assertRefusedBeforeConnecting(response, 400);
            assertThat(client.closedWithin(Duration.ofSeconds(5))).as("connection closed after the 400").isTrue();
        }
        assertThat(listener.first(RecordingListener.Rejected.class).reason()).isEqualTo(reason);
    }

    @Test
    void upgradesWithOneAuthorizationAndOneOriginAsTheHooksAndTheBackendSeeThem() throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat")
                    .add("Origin", "https://app.example").add("Authorization", "Bearer mine"));

            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(backend.nextUpgrade().header("Authorization")).isEqualTo("Bearer mine");
            client.closeHandshake(1000, "");
            backend.nextClose();
        }
        assertThat(hooks).containsExactly("origin https://app.example", "authenticator Bearer mine");
    }

    @Test
    void upgradesAPathWithDotsInsideItsSegments() throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/a.b/..c/.../chat."));

            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(backend.nextUpgrade().pathQuery()).isEqualTo("/ws/a.b/..c/.../chat.");
            client.closeHandshake(1000, "");
            backend.nextClose();
        }
    }

    /**
     * Jetty's HTTP/1.1 connection refuses an {@code Upgrade} without {@code Connection: upgrade} itself ("Invalid h2c
     * upgrade headers"), before the proxy's handler runs; the client still gets a 400 that closes the connection and
     * no backend is contacted. (Such refusals are not reported to the listener: the proxy never sees them.)
     */
    @ParameterizedTest(name = "Connection: {0}")
    @ValueSource(strings = {"", "keep-alive", "close"})
    void refusesUpgradeWithoutConnectionUpgradeWith400BeforeConnecting(String connection) throws Exception {
        Request request = upgrade("/ws/chat");
        if (connection.isEmpty()) {
            request.remove("Connection");
        } else {
            request.set("Connection", connection);
        }
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(request);

            assertThat(response.status()).as("%s", response).isEqualTo(400);
            assertThat(response.header("Connection")).containsIgnoringCase("close");
            assertThat(response.bodyText()).doesNotContain("Exception").doesNotContain("java.");
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(backend.httpConnections).hasValue(0);
        assertThat(next.requests).isEmpty();
    }

    @ParameterizedTest(name = "Sec-WebSocket-Version: {0}")
    @ValueSource(strings = {"", "8", "12", "1337", "13x"})
    void answersUnsupportedVersionWith426AndVersion13BeforeConnecting(String version) throws Exception {
        Request request = upgrade("/ws/chat");
        if (version.isEmpty()) {
            request.remove("Sec-WebSocket-Version");
        } else {
            request.set("Sec-WebSocket-Version", version);
        }
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(request);

            assertRefusedBeforeConnecting(response, 426);
            assertThat(response.header("Sec-WebSocket-Version")).isEqualTo("13");
            assertThat(client.closedWithin(Duration.ofSeconds(5))).as("connection closed after the 426").isTrue();
        }
    }

    static Stream<Arguments> refusalsWithPipelinedRequests() {
        return Stream.of(
                malformed("426 version 8", r -> r.set("Sec-WebSocket-Version", "8")),
                malformed("400 bad key", r -> r.set("Sec-WebSocket-Key", "AAAA")),
                malformed("400 Content-Length body", r -> r.add("Content-Length", "5").body("hello")),
                malformed("400 chunked body", r -> r.add("Transfer-Encoding", "chunked")
                        .body("5\r\nhello\r\n0\r\n\r\n")));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("refusalsWithPipelinedRequests")
    void neverReadsRequestsPipelinedAfterARefusedUpgrade(String name, UnaryOperator<Request> mutation)
            throws Exception {
        String host = RawHttp.host(proxy);
        String smuggled = "GET /ws/plain?smuggled=1 HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
                + "GET /outside?smuggled=2 HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
        try (RawHttp client = RawHttp.connect(proxy)) {
            client.send(new String(mutation.apply(upgrade("/ws/chat")).bytes(),
                    java.nio.charset.StandardCharsets.ISO_8859_1) + smuggled);

            RawHttp.Response response = client.readResponse();
            assertThat(response.status()).as("%s", response).isIn(400, 426);
            assertThat(response.header("Connection")).containsIgnoringCase("close");
            // Exactly one response, then the proxy closes: the pipelined requests were never read.
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(backend.httpConnections).hasValue(0);
        assertThat(backend.upgrades).isEmpty();
        assertThat(next.requests).isEmpty();
    }

    @Test
    void refusesAHugeHeaderBeforeConnecting() throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat").add("X-Big", "a".repeat(64 * 1024)));

            assertThat(response.status()).as("%s", response).isIn(400, 431);
            assertPlainPageWithoutDetail(response);
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(backend.httpConnections).hasValue(0);
        assertThat(next.requests).isEmpty();
    }

    @Test
    void refusesTenThousandHeadersBeforeConnecting() throws Exception {
        Request request = upgrade("/ws/chat");
        for (int i = 0; i < 10_000; i++) {
            request.add("X-H" + i, "v");
        }
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(request);

            assertThat(response.status()).as("%s", response).isIn(400, 431);
            assertPlainPageWithoutDetail(response);
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(backend.httpConnections).hasValue(0);
        assertThat(next.requests).isEmpty();
    }

    @Test
    void upgradesPromptlyWhileSlowClientsHoldIncompleteHandshakes() throws Exception {
        List<RawHttp> slow = new ArrayList<>();
        try {
            for (int i = 0; i < 100; i++) {
                RawHttp client = RawHttp.connect(proxy);
                slow.add(client);
                client.send("GET /ws/slow" + i + " HTTP/1.1\r\nHost: " + RawHttp.host(proxy) + "\r\nUpgr");
            }
            try (Clients clients = new Clients()) {
                long started = System.nanoTime();
                WsRecorder fast = clients.connect(Clients.ws(proxy, "/ws/fast"));
                assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(2));
                fast.sendText("ok");
                assertThat(fast.nextText()).isEqualTo("ok");
                fast.session.close(1000, null, org.eclipse.jetty.websocket.api.Callback.NOOP);
                fast.nextClose();
                Clients.assertNoLeaks(proxy, clients, backend);
            }
            assertThat(backend.upgrades).extracting(TestBackend.Upgrade::pathQuery).containsExactly("/ws/fast");
        } finally {
            for (RawHttp client : slow) {
                client.close();
            }
        }
    }

    @Test
    void refusesDuplicateHostHeadersBeforeConnecting() throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat").add("Host", "evil.example"));

            assertThat(response.status()).as("%s", response).isEqualTo(400);
            assertPlainPageWithoutDetail(response);
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(backend.httpConnections).hasValue(0);
    }

    @ParameterizedTest(name = "Host: {0}")
    @ValueSource(strings = {"127.0.0.1:{decoy}", "user@127.0.0.1:{decoy}", "[::ffff:127.0.0.1]:{decoy}"})
    void neverPicksTheBackendFromTheHostHeader(String hostTemplate) throws Exception {
        try (TestBackend decoy = new TestBackend("decoy");
                RawHttp client = RawHttp.connect(proxy)) {
            String host = hostTemplate.replace("{decoy}", String.valueOf(decoy.port()));
            RawHttp.Response response = client.exchange(upgrade("/ws/chat").set("Host", host));

            assertRoutedByPathOrRefused(client, response);
            assertThat(decoy.httpConnections).as("connections to the backend named in Host").hasValue(0);
        }
    }

    @Test
    void neverPicksTheBackendFromAnAbsoluteFormTarget() throws Exception {
        try (TestBackend decoy = new TestBackend("decoy");
                RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(
                    Request.upgrade("http://127.0.0.1:" + decoy.port() + "/ws/chat", RawHttp.host(proxy)));

            assertRoutedByPathOrRefused(client, response);
            assertThat(decoy.httpConnections).as("connections to the backend named in the target").hasValue(0);
        }
    }

    @Test
    void doesNotPassAnUpgradeWithAWrongVersionToTheNextHandler() throws Exception {
        // Jetty's own upgrade handler lets such a request fall through to its child (matrix H5); the proxy must not.
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat").set("Sec-WebSocket-Version", "8"));

            assertThat(response.status()).isEqualTo(426);
            assertThat(response.bodyText()).doesNotContain("next:");
        }
        assertThat(next.requests).isEmpty();
    }

    private void assertRefusedBeforeConnecting(RawHttp.Response response, int status) {
        assertThat(response.status()).as("%s", response).isEqualTo(status);
        assertThat(response.header("Connection")).as("Connection header").containsIgnoringCase("close");
        assertThat(response.bodyText()).doesNotContain("Exception").doesNotContain("java.");
        assertThat(backend.httpConnections).as("backend connections").hasValue(0);
        assertThat(backend.upgrades).as("backend upgrades").isEmpty();
        assertThat(next.requests).as("requests passed to the next handler").isEmpty();
        assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(status);
        assertThat(listener.first(RecordingListener.Rejected.class).route()).isEqualTo("/ws/");
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
        assertThat(hooks).as("origin validator and authenticator calls").isEmpty();
    }

    /** Jetty's parser refused the request: the page is the status in plain text, not Jetty's HTML with the reason. */
    private static void assertPlainPageWithoutDetail(RawHttp.Response response) {
        assertThat(response.header("Content-Type")).startsWith("text/plain");
        assertThat(new String(response.body(), java.nio.charset.StandardCharsets.UTF_8))
                .isEqualTo(response.status() + " " + org.eclipse.jetty.http.HttpStatus.getMessage(response.status())
                        + "\n");
    }

    /** Either the route's own backend got the upgrade (by path, then closed cleanly), or the request was a 400. */
    private void assertRoutedByPathOrRefused(RawHttp client, RawHttp.Response response) throws Exception {
        if (response.status() == 101) {
            assertThat(backend.nextUpgrade().pathQuery()).isEqualTo("/ws/chat");
            client.closeHandshake(1000, "");
            backend.nextClose();
        } else {
            assertThat(response.status()).as("%s", response).isEqualTo(400);
            assertThat(backend.httpConnections).hasValue(0);
        }
    }
}
