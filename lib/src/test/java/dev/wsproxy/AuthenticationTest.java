package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.internal.WebSocketProxyHandler;

/**
 * The authentication hook: an {@link Authenticator} sees each upgrade request after the handshake, Origin and limit
 * checks and before any backend connection; it refuses with a status and headers of its choosing, or lets the request
 * through with backend headers (replacing what the client sent under those names) and attributes that selectors and
 * listeners read. It may decide later, on its own thread; a late, failing or throwing one gets the client 504 or 500,
 * and every refusal gives the connection slot back.
 */
class AuthenticationTest {

    private TestBackend backend;
    private TestBackend other;
    private WebSocketProxy proxy;
    private Clients clients;
    private final RecordingListener listener = new RecordingListener();
    private final List<HandshakeRequest> authenticated = new CopyOnWriteArrayList<>();

    @BeforeEach
    void startBackends() throws Exception {
        backend = new TestBackend("b1");
        other = new TestBackend("b2");
    }

    @AfterEach
    void tearDown() throws Exception {
        if (proxy == null) {
            backend.close();
            other.close();
        } else {
            Clients.tearDown(proxy, clients, backend, other);
        }
    }

    private void start(ProxyBuilder builder) throws Exception {
        proxy = builder.listen("127.0.0.1", 0).listener(listener).build();
        proxy.start();
        clients = new Clients();
    }

    /** Bearer tokens in the query: {@code good} is user 42 of tenant {@code b2}; anything else is refused. */
    private Authenticator bearer() {
        return Authenticator.of(request -> {
            authenticated.add(request);
            if (!"good".equals(request.queryParameter("token"))) {
                return AuthDecision.reject(401).withResponseHeader("WWW-Authenticate", "Bearer realm=\"chat\"");
            }
            return AuthDecision.allow().withBackendHeader("X-User-Id", "42").withAttribute("tenant", "b2");
        });
    }

    private RawHttp.Response exchange(String pathQuery, String... headers) throws Exception {
        try (RawHttp http = RawHttp.connect(proxy)) {
            RawHttp.Request request = RawHttp.Request.upgrade(pathQuery, RawHttp.host(proxy));
            for (int i = 0; i < headers.length; i += 2) {
                request.add(headers[i], headers[i + 1]);
            }
            return http.exchange(request);
        }
    }

    @Test
    void refusesWithTheAuthenticatorsStatusAndHeadersBeforeAnyBackendConnection() throws Exception {
        start(ProxyBuilder.create().route("/", r -> r.backends(backend.backend()).authenticator(bearer())));

        RawHttp.Response response = exchange("/chat?token=bad");

        assertThat(response.status()).isEqualTo(401);
        assertThat(response.header("WWW-Authenticate")).isEqualTo("Bearer realm=\"chat\"");
        assertThat(response.header("Connection")).isEqualTo("close");
        assertThat(backend.httpConnections.get()).isZero();
        assertThat(listener.first(RecordingListener.Rejected.class).status()).isEqualTo(401);
    }

    @Test
    void refusesWithTheAuthenticatorsStatusWhenAHeaderIsTooLargeForTheClientsConnectionWithoutThatHeader()
            throws Exception {
        // Every header was added, and Jetty's generator, whose head holds 16 KiB by default, failed: the client got
        // Jetty's 500 while listeners had been told 401.
        start(ProxyBuilder.create().route("/", r -> r.backends(backend.backend()).authenticator(
                request -> CompletableFuture.completedFuture(AuthDecision.reject(401)
                        .withResponseHeader("X-Big", "b".repeat(20_000))
                        .withResponseHeader("WWW-Authenticate", "Bearer realm=\"chat\"")))));

        RawHttp.Response response = exchange("/chat");

        assertThat(response.status()).isEqualTo(401);
        assertThat(response.header("X-Big")).as("the header too large for the head").isNull();
        assertThat(response.header("WWW-Authenticate")).as("the header after it").isEqualTo("Bearer realm=\"chat\"");
        assertThat(response.header("Connection")).isEqualTo("close");
        assertThat(response.bodyText()).isEqualTo("401 Unauthorized\n");
        assertThat(listener.first(RecordingListener.Rejected.class).status()).isEqualTo(401);
        assertThat(backend.httpConnections.get()).isZero();
    }

    @Test
    void readsAQueryThatDoesNotDecodeStrictlyAsTheBackendWillNotAsTheAuthenticatorsFailure() throws Exception {
        // Jetty throws "Bad query" for a % that starts no escape and for bytes that are not UTF-8 (a 500 and a logged
        // stack trace before). Decoded leniently, the bad parameter is not the token, and the others read as the
        // backend reads them: a token after the bad escape still lets the session in.
        start(ProxyBuilder.create().route("/", r -> r.backends(backend.backend()).authenticator(bearer())));

        assertThat(exchange("/chat?token=%").status()).isEqualTo(401);
        assertThat(exchange("/chat?token=%FF").status()).isEqualTo(401);
        assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                .containsExactly(401, 401);
        assertThat(backend.httpConnections.get()).isZero();

        assertThat(exchange("/chat?x=%&token=good").status()).isEqualTo(101);
        assertThat(backend.nextUpgrade().pathQuery()).isEqualTo("/chat?x=%25&token=good");
    }

    @Test
    void seesEveryValueOfARepeatedQueryParameterSoItCanRefuseWhatTheBackendMayReadOtherwise() throws Exception {
        // ?room=mine&room=victim: queryParameter gives mine, and the query goes to the backend as it came, where PHP
        // and Rails read victim. The authenticator refuses a repeated room, which it could not see before.
        List<List<String>> rooms = new CopyOnWriteArrayList<>();
        start(ProxyBuilder.create().route("/", r -> r.backends(backend.backend()).authenticator(Authenticator.of(
                request -> {
                    List<String> room = request.queryParameters("room");
                    rooms.add(room);
                    assertThat(request.queryParameter("room")).isEqualTo(room.isEmpty() ? null : room.get(0));
                    return room.size() == 1 && room.get(0).equals("mine")
                            ? AuthDecision.allow() : AuthDecision.reject(403);
                }))));

        assertThat(exchange("/chat?room=mine&room=victim").status()).isEqualTo(403);
        assertThat(exchange("/chat?room=mine&x=1&room=%76ictim&room=").status()).isEqualTo(403);
        assertThat(exchange("/chat?room=%&room=mine").status()).as("a query that does not decode strictly")
                .isEqualTo(403);
        assertThat(exchange("/chat?other=mine").status()).isEqualTo(403);
        assertThat(exchange("/chat").status()).isEqualTo(403);
        assertThat(backend.httpConnections.get()).isZero();
        assertThat(exchange("/chat?x=1&room=mine").status()).isEqualTo(101);

        assertThat(rooms).containsExactly(List.of("mine", "victim"), List.of("mine", "victim", ""),
                List.of("%", "mine"), List.of(), List.of(), List.of("mine"));
        assertThat(backend.nextUpgrade().pathQuery()).isEqualTo("/chat?x=1&room=mine");
    }

    @Test
    void addsVerifiedHeadersForTheBackendReplacingForgedOnes() throws Exception {
        start(ProxyBuilder.create().route("/", r -> r.backends(backend.backend()).authenticator(bearer())));

        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/chat?token=good"), Map.of("X-User-Id", "admin"));

        TestBackend.Upgrade upgrade = backend.nextUpgrade();
        assertThat(upgrade.headers().get("x-user-id")).containsExactly("42");
        recorder.session.close();
        recorder.nextClose();
    }

    @Test
    void attributesReachTheSelectorAndTheSession() throws Exception {
        BlockingQueue<ProxySession> opened = new LinkedBlockingQueue<>();
        start(ProxyBuilder.create()
                .route("/", r -> r.backends(backend.backend(), other.backend()).authenticator(bearer())
                        .backendSelector(context -> "b2".equals(context.attribute("tenant"))
                                ? context.backends().get(1) : context.backends().get(0)))
                .listener(new ProxyListener() {
                    @Override
                    public void onSessionOpened(ProxySession session) {
                        opened.add(session);
                    }
                }));

        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/chat?token=good"));
        recorder.sendText("whoami");

        assertThat(recorder.nextText()).isEqualTo("b2");
        ProxySession session = opened.poll(10, TimeUnit.SECONDS);
        assertThat(session).isNotNull();
        assertThat(session.attributes()).containsExactly(Map.entry("tenant", "b2"));
        recorder.session.close();
        recorder.nextClose();
    }

    /** An authenticator that decides later: each request's decision is a future put in {@code pending}. */
    private static Authenticator deciding(BlockingQueue<CompletableFuture<AuthDecision>> pending) {
        return request -> {
            CompletableFuture<AuthDecision> decision = new CompletableFuture<>();
            pending.add(decision);
            return decision;
        };
    }

    @Test
    void waitsForALaterDecisionWithoutHoldingAThreadOrTheBackend() throws Exception {
        BlockingQueue<CompletableFuture<AuthDecision>> pending = new LinkedBlockingQueue<>();
        start(ProxyBuilder.create().route("/", r -> r.backends(backend.backend()).authenticator(deciding(pending))));

        CompletableFuture<WsRecorder> connecting = CompletableFuture.supplyAsync(() -> {
            try {
                return clients.connect(Clients.ws(proxy, "/chat"));
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        CompletableFuture<AuthDecision> decision = pending.poll(10, TimeUnit.SECONDS);
        assertThat(decision).as("the authenticator was asked").isNotNull();
        assertThat(backend.httpConnections.get()).as("backend connections before the decision").isZero();
        assertThat(connecting).isNotDone();

        // Decided on a thread of the test's, long after the request thread moved on.
        decision.complete(AuthDecision.allow().withBackendHeader("X-User-Id", "7"));

        WsRecorder recorder = connecting.get(10, TimeUnit.SECONDS);
        assertThat(backend.nextUpgrade().header("X-User-Id")).isEqualTo("7");
        recorder.session.close();
        recorder.nextClose();
    }

    @Test
    void answers504WhenTheDecisionIsLaterThanTheConnectTimeoutAndGivesTheSlotBack() throws Exception {
        CompletableFuture<AuthDecision> never = new CompletableFuture<>();
        start(ProxyBuilder.create()
                .maxConnectionsPerIp(1)
                .route("/slow/", r -> r.backends(backend.backend()).authenticator(request -> never)
                        .timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofMillis(300)).build()))
                .route("/open/", backend.backend()));

        assertThat(exchange("/slow/").status()).isEqualTo(504);
        assertThat(backend.httpConnections.get()).isZero();
        // The one slot of this address is free again.
        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/open/"));
        recorder.session.close();
        recorder.nextClose();
    }

    @ParameterizedTest(name = "client {0}")
    @ValueSource(strings = {"closes", "resets"})
    void reports499AndFreesTheSlotWhenTheClientLeavesBeforeALaterDecision(String how) throws Exception {
        // Nothing watched the client while its authenticator decided: listeners heard nothing until the decision (or
        // a 504 at the connect timeout, a minute here), and the address's one connection slot was held until then.
        BlockingQueue<CompletableFuture<AuthDecision>> pending = new LinkedBlockingQueue<>();
        start(ProxyBuilder.create()
                .maxConnectionsPerIp(1)
                .route("/slow/", r -> r.backends(backend.backend()).authenticator(deciding(pending))
                        .timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofMinutes(1)).build()))
                .route("/open/", backend.backend()));
        RawHttp client = RawHttp.connect(proxy);
        CompletableFuture<AuthDecision> decision;
        try (StandardError.Capture log = StandardError.capture()) {
            client.send(RawHttp.Request.upgrade("/slow/chat", RawHttp.host(proxy)));
            decision = pending.poll(10, TimeUnit.SECONDS);
            assertThat(decision).as("the authenticator was asked").isNotNull();
            if (how.equals("resets")) {
                client.reset();
            } else {
                client.close();
            }

            await().untilAsserted(() -> assertThat(listener.all(RecordingListener.Rejected.class))
                    .containsExactly(new RecordingListener.Rejected("/slow/", "/slow/chat", 499,
                            "client connection closed during authentication")));
            // The access line is written just after the listener hears of it.
            await().untilAsserted(() -> assertThat(log.text().lines().filter(l -> l.contains(" dev.wsproxy.access - ")))
                    .singleElement().asString().containsPattern(
                            " route=/slow/ backend=- duration_ms=\\d+ method=GET status=499 reason=client_left$"));
        }
        WsRecorder next = clients.connect(Clients.ws(proxy, "/open/"));
        next.session.close();
        next.nextClose();
        assertThat(backend.httpConnections.get()).as("backend connections: the next client's").isEqualTo(1);
        Clients.assertNoLeaks(proxy, clients, backend);

        // Completed on this thread, the decision's dependents run here before complete() returns: had it gone on,
        // a session would be registered and a backend handshake slot taken now.
        decision.complete(AuthDecision.allow());
        assertThat(((WebSocketProxyHandler) proxy.handler()).held()).as("what the late decision left")
                .isEqualTo(new WebSocketProxyHandler.Held(0, 0, 0, 0));
        assertThat(backend.httpConnections.get()).as("backend connections after the late decision").isEqualTo(1);
        assertThat(listener.all(RecordingListener.Rejected.class)).as("reported once").hasSize(1);
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
    }

    @Test
    void answers503WhenTheProxyStopsBeforeALaterDecisionAndGivesTheSlotBack() throws Exception {
        // Unknown to the stop's drain, a pending decision's client had its connection closed by the server's stop with
        // no answer, and listeners heard 499, a client that left, of a client the proxy had dropped.
        BlockingQueue<CompletableFuture<AuthDecision>> pending = new LinkedBlockingQueue<>();
        start(ProxyBuilder.create()
                .maxConnectionsPerIp(1)
                .route("/slow/", r -> r.backends(backend.backend()).authenticator(deciding(pending))
                        .timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofMinutes(1)).build())));
        CompletableFuture<AuthDecision> decision;
        try (RawHttp client = RawHttp.connect(proxy)) {
            client.send(RawHttp.Request.upgrade("/slow/chat", RawHttp.host(proxy)));
            decision = pending.poll(10, TimeUnit.SECONDS);
            assertThat(decision).as("the authenticator was asked").isNotNull();

            proxy.stop(Duration.ofSeconds(5));
            assertThat(listener.all(RecordingListener.Rejected.class)).as("reported before stop returned")
                    .containsExactly(new RecordingListener.Rejected("/slow/", "/slow/chat", 503,
                            "proxy is shutting down"));
            assertThat(((WebSocketProxyHandler) proxy.handler()).held())
                    .isEqualTo(new WebSocketProxyHandler.Held(0, 0, 0, 0));
            RawHttp.Response response = client.readResponse();
            assertThat(response.status()).isEqualTo(503);
            assertThat(response.header("Retry-After")).isEqualTo("5");
        }

        decision.complete(AuthDecision.allow());
        assertThat(backend.httpConnections.get()).as("backend connections after the late decision").isZero();
        assertThat(listener.all(RecordingListener.Rejected.class)).as("reported once").hasSize(1);
    }

    @Test
    void answers500WithoutDetailWhenTheAuthenticatorFails() throws Exception {
        start(ProxyBuilder.create()
                .route("/throws/", r -> r.backends(backend.backend()).authenticator(request -> {
                    throw new IllegalStateException("token service at 10.0.0.9 exploded");
                }))
                .route("/fails/", r -> r.backends(backend.backend()).authenticator(
                        request -> CompletableFuture.failedFuture(new IllegalStateException("secret detail"))))
                .route("/null/", r -> r.backends(backend.backend()).authenticator(request -> null))
                .route("/null-decision/", r -> r.backends(backend.backend()).authenticator(Authenticator.of(request -> null))));

        for (String path : List.of("/throws/", "/fails/", "/null/", "/null-decision/")) {
            RawHttp.Response response = exchange(path);
            assertThat(response.status()).as(path).isEqualTo(500);
            String body = new String(response.body(), StandardCharsets.UTF_8);
            assertThat(body).doesNotContain("exploded").doesNotContain("secret").doesNotContain("Exception");
        }
        assertThat(backend.httpConnections.get()).isZero();
    }

    @Test
    void answers500WhenTheDecisionHasAHeaderValueTheBackendWouldReadAsAnotherUser() throws Exception {
        // Both values were accepted: the first went as "alice " (Jetty writes a space for a character above 0xFF), the
        // second as it was, and the backend's parser trimmed both to "alice".
        start(ProxyBuilder.create()
                .route("/unicode/", r -> r.backends(backend.backend()).authenticator(Authenticator.of(
                        request -> AuthDecision.allow().withBackendHeader("X-User-Id", "alice\u738B"))))
                .route("/padded/", r -> r.backends(backend.backend()).authenticator(request ->
                        CompletableFuture.supplyAsync(() -> AuthDecision.allow().withBackendHeader("X-User-Id",
                                "alice ")))));

        for (String path : List.of("/unicode/", "/padded/")) {
            RawHttp.Response response = exchange(path);
            assertThat(response.status()).as(path).isEqualTo(500);
            assertThat(response.bodyText()).as(path).doesNotContain("alice").doesNotContain("X-User-Id");
        }
        assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                .containsExactly(500, 500);
        assertThat(backend.httpConnections.get()).isZero();
    }

    @Test
    void decisionsRefuseHeaderValuesTheWireWouldChange() {
        for (String value : List.of("alice\u738B", "caf\u00e9", "\u00a0", "x\u007f", "x\u0000", "x\r\ny", "alice ",
                " alice", "alice\t", "\tx", " ")) {
            assertThatThrownBy(() -> AuthDecision.allow().withBackendHeader("X-User-Id", value)).as("[%s]", value)
                    .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("value of X-User-Id");
            assertThatThrownBy(() -> AuthDecision.reject(401).withResponseHeader("WWW-Authenticate", value))
                    .as("[%s]", value).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageStartingWith("value of WWW-Authenticate");
        }
        assertThatThrownBy(() -> AuthDecision.allow().withBackendHeader("X-User-Id", "alice\u738B"))
                .hasMessageContaining("U+738B").hasMessageContaining("percent-encoding").hasMessageContaining("RFC 8187");
        assertThatThrownBy(() -> AuthDecision.allow().withBackendHeader("X-User-Id", "alice "))
                .hasMessageContaining("either end");
        // What may go: visible ASCII with spaces and tabs inside, an empty value, and the encoded forms.
        for (String value : List.of("alice", "", "Bearer realm=\"chat\", error=\"invalid_token\"", "a\tb",
                "alice%E7%8E%8B", "UTF-8''alice%E7%8E%8B", "~!@#$%^&*()_+`-={}|[]\\:;'<>?,./")) {
            assertThat(AuthDecision.allow().withBackendHeader("X-User-Id", value).headers())
                    .containsExactly(Map.entry("X-User-Id", value));
            assertThat(AuthDecision.reject(401).withResponseHeader("WWW-Authenticate", value).headers())
                    .containsExactly(Map.entry("WWW-Authenticate", value));
        }
    }

    @Test
    void decisionsRefuseTheHeadersTheBackendHandshakeWritesItselfOrNeverSends() {
        // Accepted before, they reached the backend on plain HTTP and were dropped from upgrades (BackendHandshake
        // writes its own Cache-Control and Pragma, no-cache, and no Expect).
        for (String owned : List.of("Cache-Control", "pragma", "Expect", "Cache_Control", "EXPECT")) {
            assertThatThrownBy(() -> AuthDecision.allow().withBackendHeader(owned, "no-store")).as(owned)
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("WebSocket handshake");
            assertThatThrownBy(() -> AuthDecision.allow().withoutBackendHeader(owned)).as(owned)
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("WebSocket handshake");
        }
        // In a refusal they are the authenticator's to send.
        assertThat(AuthDecision.reject(401).withResponseHeader("Cache-Control", "no-store").headers())
                .containsExactly(Map.entry("Cache-Control", "no-store"));
    }

    @Test
    void runsAfterTheOriginCheckAndCanBeTurnedOffPerRoute() throws Exception {
        start(ProxyBuilder.create()
                .authenticator(bearer())
                .originValidator(OriginValidator.allowList("https://app.example"))
                .route("/private/", backend.backend())
                .route("/public/", r -> r.backends(backend.backend()).authenticator(Authenticator.allowAll())));

        assertThat(exchange("/private/?token=good", "Origin", "https://evil.example").status()).isEqualTo(403);
        assertThat(authenticated).as("requests the authenticator saw").isEmpty();
        assertThat(exchange("/private/?token=bad", "Origin", "https://app.example").status()).isEqualTo(401);
        assertThat(authenticated).hasSize(1);

        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/public/"), Map.of("Origin", "https://app.example"));
        assertThat(authenticated).hasSize(1);
        recorder.session.close();
        recorder.nextClose();
    }

    @Test
    void decisionsRefuseHeadersThatWouldBreakTheProtocolOrForgeTheProxysOwn() {
        assertThatThrownBy(() -> AuthDecision.reject(200)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> AuthDecision.reject(101)).isInstanceOf(IllegalArgumentException.class);
        // Also spelled with _ for -: the proxy removes the client's headers spelled either way before it adds an
        // authenticator's, so X_Real_IP replaced the proxy's own X-Real-IP, and removing X_Forwarded_For removed it.
        for (String reserved : List.of("Host", "X-Forwarded-For", "x-real-ip", "Forwarded", "Connection", "Upgrade",
                "Sec-WebSocket-Key", "Transfer-Encoding", "Proxy-Authorization", "Proxy", "X_Real_IP",
                "X_Forwarded_For", "x_forwarded_proto", "Sec_WebSocket_Key", "Proxy_Authorization", "Content_Length")) {
            assertThatThrownBy(() -> AuthDecision.allow().withBackendHeader(reserved, "x")).as(reserved)
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> AuthDecision.allow().withoutBackendHeader(reserved)).as(reserved)
                    .isInstanceOf(IllegalArgumentException.class);
        }
        for (String reserved : List.of("Content-Length", "Connection", "Content-Type", "Sec-WebSocket-Accept")) {
            assertThatThrownBy(() -> AuthDecision.reject(401).withResponseHeader(reserved, "x")).as(reserved)
                    .isInstanceOf(IllegalArgumentException.class);
        }
        assertThatThrownBy(() -> AuthDecision.allow().withBackendHeader("X-User", "1\r\nX-Admin: true"))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> AuthDecision.allow().withBackendHeader("X User", "1"))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> AuthDecision.allow().withResponseHeader("WWW-Authenticate", "Bearer"))
                .isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> AuthDecision.reject(401).withBackendHeader("X-User-Id", "1"))
                .isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> AuthDecision.reject(401).withAttribute("user", "1"))
                .isInstanceOf(IllegalStateException.class);
        AuthDecision decision = AuthDecision.allow().withBackendHeader("X-User-Id", "secret-token");
        assertThat(decision.toString()).contains("X-User-Id").doesNotContain("secret-token");
    }

    @Test
    void decisionsRefuseAContentEncodingForTheProxysPlainTextRefusal() {
        // Accepted, it went with the proxy's own "401 Unauthorized" text: a client that decodes the body as gzip
        // (a browser, curl --compressed) failed on it instead of reading the refusal.
        for (String coding : List.of("Content-Encoding", "content-encoding", "CONTENT-ENCODING")) {
            assertThatThrownBy(() -> AuthDecision.reject(401).withResponseHeader(coding, "gzip")).as(coding)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("name: " + coding + " (expected: no content coding; the refusal's body is the proxy's "
                            + "plain text)");
        }
    }
}
