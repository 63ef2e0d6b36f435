package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayInputStream;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.exceptions.UpgradeException;
import org.eclipse.jetty.websocket.client.ClientUpgradeRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.RawHttp.Request;

/**
 * The backend handshake comes first (matrix rows H1, H12, B1 to B7, M4, M7, M8): the client gets {@code 101} only after
 * the backend's {@code 101}, with the backend's subprotocol; any other backend answer is relayed as the backend sent
 * it; a broken {@code 101}, an unreachable backend or one that does not answer in time gives {@code 502} or
 * {@code 504}; and the proxy never leaves a backend connection behind.
 */
class BackendHandshakeTest {

    /** Long enough never to fire by accident; the silent-backend test sets its own, short one. */
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);
    private static final Duration SHORT_CONNECT_TIMEOUT = Duration.ofMillis(500);

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final List<TestBackend> testBackends = new ArrayList<>();
    private final RecordingListener listener = new RecordingListener();
    private WebSocketProxy proxy;

    @AfterEach
    void stop() throws Exception {
        Clients.stopAfterLeakCheck(proxy, resources, testBackends.toArray(TestBackend[]::new));
    }

    private TestBackend testBackend(String id) throws Exception {
        TestBackend backend = new TestBackend(id);
        resources.add(backend);
        testBackends.add(backend);
        return backend;
    }

    private RawBackend rawBackend(RawBackend backend) {
        resources.add(backend);
        return backend;
    }

    private WebSocketProxy startProxy(Backend backend) throws Exception {
        return startProxy(builder -> builder.route("/ws/", backend));
    }

    /** The refusing paths of {@link TestBackend} are at its root: map {@code /ws/x} to {@code /x}. */
    private static Backend atRoot(TestBackend backend) {
        return Backend.of(backend.uri() + "/");
    }

    private WebSocketProxy startProxy(UnaryOperator<ProxyBuilder> configuration) throws Exception {
        return startProxy(CONNECT_TIMEOUT, configuration);
    }

    private WebSocketProxy startProxy(Duration connectTimeout, UnaryOperator<ProxyBuilder> configuration)
            throws Exception {
        proxy = configuration.apply(ProxyBuilder.create()
                        .listen("127.0.0.1", 0)
                        .timeoutPolicy(TimeoutPolicy.custom().connect(connectTimeout).build())
                        .listener(listener))
                .build();
        proxy.start();
        return proxy;
    }

    private Request upgrade(String target) {
        return Request.upgrade(target, RawHttp.host(proxy));
    }

    // ---- backend first, subprotocols ----

    @Test
    void sendsThe101OnlyAfterTheBackendAnswered101() throws Exception {
        RawBackend backend = rawBackend(RawBackend.holding(RawBackend.switching("chat")));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            client.send(upgrade("/ws/chat").add("Sec-WebSocket-Protocol", "foo, chat"));

            RawBackend.Request seen = backend.nextRequest();
            assertThat(seen.header("Sec-WebSocket-Key")).as("backend key").isNotNull()
                    .isNotEqualTo(RawFrames.SAMPLE_KEY);
            assertThat(seen.header("Sec-WebSocket-Protocol")).isEqualTo("foo, chat");
            client.assertNothingWithin(Duration.ofMillis(300));

            backend.release();
            RawHttp.Response response = client.readResponse();
            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(response.header("Sec-WebSocket-Accept")).isEqualTo(RawFrames.SAMPLE_ACCEPT);
            assertThat(response.header("Sec-WebSocket-Protocol")).isEqualTo("chat");
            assertThat(response.header("Upgrade")).isEqualToIgnoringCase("websocket");
            assertThat(response.header("Connection")).isEqualToIgnoringCase("upgrade");
            assertThat(response.header("Sec-WebSocket-Extensions")).isNull();

            client.sendText("after the 101");
            assertThat(client.readFrame().text()).isEqualTo("after the 101");
            assertThat(client.closeHandshake(1000, "bye").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.nextEnd(5)).isEqualTo("close:1000");
        assertThat(listener.all(RecordingListener.Rejected.class)).isEmpty();
    }

    @Test
    void relaysTheSubprotocolTheBackendChoseToAJettyClient() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(backend.backend());
        try (Clients clients = new Clients()) {
            WsRecorder client = clients.connect(Clients.ws(proxy, "/ws/chat"), "foo", "chat");

            assertThat(client.session.getUpgradeResponse().getAcceptedSubProtocol()).isEqualTo("chat");
            assertThat(backend.nextUpgrade().subprotocols()).containsExactly("foo", "chat");
            client.sendText("hi");
            assertThat(client.nextText()).isEqualTo("hi");
            client.session.close(1000, "bye", Callback.NOOP);
            assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "bye"));
            Clients.assertNoLeaks(proxy, clients, backend);
        }
    }

    @Test
    void jdkClientNegotiatesTheSubprotocolAndEchoesThroughTheProxy() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(backend.backend());
        JdkListener events = new JdkListener();

        WebSocket client = HttpClient.newHttpClient().newWebSocketBuilder()
                .subprotocols("foo", "chat")
                .header("X-Client", "jdk")
                .buildAsync(Clients.ws(proxy, "/ws/jdk?x=1"), events)
                .get(10, TimeUnit.SECONDS);

        assertThat(client.getSubprotocol()).isEqualTo("chat");
        TestBackend.Upgrade seen = backend.nextUpgrade();
        assertThat(seen.pathQuery()).isEqualTo("/ws/jdk?x=1");
        assertThat(seen.header("X-Client")).isEqualTo("jdk");
        assertThat(seen.subprotocols()).containsExactly("foo", "chat");
        client.sendText("hello from the JDK", true).get(5, TimeUnit.SECONDS);
        assertThat(events.texts.poll(10, TimeUnit.SECONDS)).isEqualTo("hello from the JDK");
        client.sendClose(1000, "jdk-bye").get(5, TimeUnit.SECONDS);
        assertThat(events.closes.poll(10, TimeUnit.SECONDS)).isEqualTo("1000 jdk-bye");
        assertThat(backend.nextClose()).isEqualTo(new TestBackend.Closed(1000, "jdk-bye"));
        assertThat(events.errors).isEmpty();
    }

    @Test
    void jdkClientSeesTheBackendRefusalStatus() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(atRoot(backend));

        assertThatThrownBy(() -> HttpClient.newHttpClient().newWebSocketBuilder()
                .buildAsync(Clients.ws(proxy, "/ws/reject403"), new JdkListener())
                .get(10, TimeUnit.SECONDS))
                .isInstanceOf(ExecutionException.class)
                .cause().isInstanceOfSatisfying(WebSocketHandshakeException.class,
                        e -> assertThat(e.getResponse().statusCode()).isEqualTo(403));
    }

    @ParameterizedTest(name = "offered [{0}], backend picks [{1}]")
    @CsvSource({"'a, b', b", "'a, b', a", "'a, b', ''", "'', ''"})
    void relaysTheBackendsChoiceAmongTheOfferedSubprotocols(String offered, String picked) throws Exception {
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.switching(picked.isEmpty() ? null : picked)));
        startProxy(backend.backend());
        Request request = upgrade("/ws/chat");
        if (!offered.isEmpty()) {
            request.add("Sec-WebSocket-Protocol", offered);
        }
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(request);

            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(response.header("Sec-WebSocket-Protocol")).isEqualTo(picked.isEmpty() ? null : picked);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.nextEnd(5)).isEqualTo("close:1000");
    }

    @ParameterizedTest(name = "offered [{0}], backend picks [{1}]")
    @CsvSource({"'a, b', c", "'', chat", "'a, b', 'a, b'"})
    void answers502WhenTheBackendPicksASubprotocolTheClientDidNotOffer(String offered, String picked)
            throws Exception {
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.switching(picked)));
        startProxy(backend.backend());
        Request request = upgrade("/ws/chat");
        if (!offered.isEmpty()) {
            request.add("Sec-WebSocket-Protocol", offered);
        }
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(request);

            assertProxyError(response, 502);
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertConnectFailedReported(502);
    }

    // ---- backend refusals, relayed ----

    @Test
    void relaysA401RefusalWithItsChallengeAndBody() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(atRoot(backend));
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/reject401?token=no"));

            assertThat(response.status()).as("%s", response).isEqualTo(401);
            assertThat(response.header("WWW-Authenticate")).isEqualTo("Bearer realm=\"test\"");
            assertThat(response.bodyText()).isEqualTo("token required");
            assertThat(response.header("Connection")).containsIgnoringCase("close");
            assertThat(response.header("Upgrade")).isNull();
            assertThat(response.header("Sec-WebSocket-Accept")).isNull();
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertThat(backend.nextUpgrade().pathQuery()).isEqualTo("/reject401?token=no");
        assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(401);
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
    }

    @Test
    void relaysA403RefusalWithItsHeaderAndBody() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(atRoot(backend));
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/reject403"));

            assertThat(response.status()).as("%s", response).isEqualTo(403);
            assertThat(response.header("X-Backend-Reason")).isEqualTo("forbidden tenant");
            assertThat(response.bodyText()).isEqualTo("forbidden by backend");
            assertThat(response.header("Connection")).containsIgnoringCase("close");
            assertThat(response.header("Sec-WebSocket-Accept")).isNull();
        }
        assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(403);
    }

    @Test
    void jettyClientSeesTheBackendRefusalAsAnUpgradeFailure() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(atRoot(backend));
        try (Clients clients = new Clients()) {
            WsRecorder recorder = new WsRecorder();
            assertThatThrownBy(() -> clients.client.connect(recorder, new ClientUpgradeRequest(
                    Clients.ws(proxy, "/ws/reject401"))).get(10, TimeUnit.SECONDS))
                    .isInstanceOf(ExecutionException.class)
                    .cause().isInstanceOfSatisfying(UpgradeException.class,
                            e -> assertThat(e.getResponseStatusCode()).isEqualTo(401));
            Clients.assertNoLeaks(proxy, clients, backend);
        }
    }

    @Test
    void neverRelaysBytesPipelinedAfterAHandshakeTheBackendRefused() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(atRoot(backend));
        String host = RawHttp.host(proxy);
        try (RawHttp client = RawHttp.connect(proxy)) {
            ByteArrayOutputStream write = new ByteArrayOutputStream();
            write.write(upgrade("/ws/reject403").bytes());
            write.write(RawFrames.text("frame before the 101", true));
            write.write(("GET /ws/plain?smuggled=1 HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
                    .getBytes(StandardCharsets.ISO_8859_1));
            client.send(write.toByteArray());

            RawHttp.Response response = client.readResponse();
            assertThat(response.status()).as("%s", response).isEqualTo(403);
            assertThat(client.closedWithin(Duration.ofSeconds(5))).as("closed after the one response").isTrue();
        }
        assertThat(backend.nextUpgrade().pathQuery()).isEqualTo("/reject403");
        assertThat(backend.upgrades).isEmpty();
        assertThat(backend.texts).isEmpty();
        assertThat(backend.httpConnections).as("only the refused handshake's connection").hasValue(1);
    }

    @Test
    void relaysABackend200AsARefusalNeverAsAnUpgrade() throws Exception {
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.raw("HTTP/1.1 200 OK\r\n"
                + "Content-Type: text/plain\r\nX-From: raw\r\nContent-Length: 5\r\n\r\nhello")));
        startProxy(backend.backend());
        String host = RawHttp.host(proxy);
        try (RawHttp client = RawHttp.connect(proxy)) {
            client.send(new String(upgrade("/ws/chat").bytes(), StandardCharsets.ISO_8859_1)
                    + "GET /ws/internal HTTP/1.1\r\nHost: " + host + "\r\n\r\n");

            RawHttp.Response response = client.readResponse();
            assertThat(response.status()).as("%s", response).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("hello");
            assertThat(response.header("X-From")).isEqualTo("raw");
            assertThat(response.header("Connection")).containsIgnoringCase("close");
            assertThat(response.header("Upgrade")).isNull();
            assertThat(client.closedWithin(Duration.ofSeconds(5))).as("closed after the one response").isTrue();
        }
        assertThat(backend.nextRequest().requestLine()).isEqualTo("GET /ws/chat HTTP/1.1");
        // The raw backend records whatever arrives after its refusal until the proxy closes the connection.
        assertThat(backend.nextEnd(5)).as("the refused handshake's connection closed").isIn("eof", "reset");
        assertThat(backend.requests).as("requests after the handshake").isEmpty();
        assertThat(backend.connections).hasValue(1);
        assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(200);
    }

    @Test
    void closesTheBackendConnectionAfterRelayingItsRefusal() throws Exception {
        // A keep-alive refusal: the proxy must not keep (or reuse) the connection of a failed upgrade.
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.raw("HTTP/1.1 403 Forbidden\r\n"
                + "Content-Type: text/plain\r\nContent-Length: 6\r\n\r\ndenied")));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(upgrade("/ws/chat")).status()).isEqualTo(403);
        }
        assertThat(backend.nextEnd(3)).isIn("eof", "reset");
    }

    @Test
    void relaysABackendRedirectWithoutFollowingIt() throws Exception {
        RawBackend elsewhere = rawBackend(RawBackend.answering(RawBackend.switching(null)));
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.raw("HTTP/1.1 302 Found\r\n"
                + "Location: ws://127.0.0.1:" + elsewhere.port() + "/elsewhere\r\nContent-Length: 0\r\n\r\n")));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(response.status()).as("%s", response).isEqualTo(302);
            assertThat(response.header("Location")).isEqualTo("ws://127.0.0.1:" + elsewhere.port() + "/elsewhere");
        }
        assertThat(elsewhere.connections).as("connections to the redirect target").hasValue(0);
    }

    @Test
    void dropsHopByHopAndHandshakeHeadersOfARelayedRefusal() throws Exception {
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.raw("HTTP/1.1 403 Forbidden\r\n"
                + "Connection: keep-alive, X-Hop, x_trace\r\n"
                + "Keep-Alive: timeout=5\r\n"
                + "X-Hop: secret-for-the-proxy\r\n"
                + "X-Trace: internal\r\n"
                + "Upgrade: websocket\r\n"
                + "Sec-WebSocket-Accept: " + RawFrames.SAMPLE_ACCEPT + "\r\n"
                + "X-Kept: yes\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n"
                + "3\r\nden\r\n3\r\nied\r\n0\r\n\r\n")));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(response.status()).as("%s", response).isEqualTo(403);
            assertThat(response.bodyText()).isEqualTo("denied");
            assertThat(response.header("X-Kept")).isEqualTo("yes");
            assertThat(response.header("Connection")).isEqualToIgnoringCase("close");
            assertThat(response.header("Keep-Alive")).isNull();
            assertThat(response.header("Upgrade")).isNull();
            assertThat(response.header("Sec-WebSocket-Accept")).isNull();
            assertThat(response.header("X-Hop")).as("header named in the backend's Connection").isNull();
            assertThat(response.header("X-Trace")).as("named with _ for -").isNull();
        }
    }

    @Test
    void capsALargeRefusalBodyAndKeepsItsFramingConsistent() throws Exception {
        String body = "x".repeat(100 * 1024);
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.raw("HTTP/1.1 403 Forbidden\r\n"
                + "Content-Type: text/plain\r\nContent-Length: " + body.length() + "\r\n\r\n" + body)));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(response.status()).isEqualTo(403);
            assertThat(response.body().length).as("relayed body")
                    .isEqualTo(Integer.parseInt(response.header("Content-Length")))
                    .isPositive()
                    .isLessThanOrEqualTo(body.length());
            assertThat(response.bodyText()).matches("x+");
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
    }

    @Test
    void relaysACompressedRefusalBodyThatMatchesItsHeaders() throws Exception {
        String body = new String(gzip("denied by a gzip backend".getBytes(StandardCharsets.UTF_8)),
                StandardCharsets.ISO_8859_1);
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.raw("HTTP/1.1 403 Forbidden\r\n"
                + "Content-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: " + body.length()
                + "\r\n\r\n" + body)));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat").add("Accept-Encoding", "gzip"));

            assertThat(response.status()).as("%s", response).isEqualTo(403);
            String encoding = response.header("Content-Encoding");
            String decoded = encoding != null && encoding.contains("gzip")
                    ? new String(new GZIPInputStream(new ByteArrayInputStream(response.body())).readAllBytes(),
                            StandardCharsets.UTF_8)
                    : response.bodyText();
            assertThat(decoded).isEqualTo("denied by a gzip backend");
        }
    }

    /**
     * A compressed refusal body the proxy cannot relay whole, past the 64 KiB it reads or cut by the backend's end of
     * file, goes without its body and its {@code Content-Encoding}, with its status and other headers: its first bytes
     * are no gzip body, and a client that decodes it fails. (Before, the cut body went with
     * {@code Content-Encoding: gzip}.)
     */
    @ParameterizedTest
    @ValueSource(strings = {"past the proxy's cap", "cut by the backend's end of file"})
    void relaysACompressedRefusalBodyItCannotRelayWholeWithoutIt(String how) throws Exception {
        byte[] content = new byte[100 * 1024];
        new java.util.Random(7).nextBytes(content); // incompressible: the gzip body is as large
        byte[] gzipped = gzip(content);
        int sent = how.startsWith("cut") ? gzipped.length / 2 : gzipped.length; // half: less than the cap
        RawBackend backend = rawBackend(RawBackend.answeringThenClosing(RawBackend.raw("HTTP/1.1 403 Forbidden\r\n"
                + "Content-Type: application/json\r\nContent-Encoding: gzip\r\nX-Reason: policy\r\n"
                + "Content-Length: " + gzipped.length + "\r\n\r\n"
                + new String(gzipped, 0, sent, StandardCharsets.ISO_8859_1))));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat").add("Accept-Encoding", "gzip"));

            assertThat(response.status()).as("%s", response).isEqualTo(403);
            assertThat(response.header("X-Reason")).isEqualTo("policy");
            assertThat(response.header("Content-Encoding")).isNull();
            assertThat(response.body()).isEmpty();
            assertThat(response.header("Content-Length")).isEqualTo("0");
        }
        assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                .containsExactly(403);
    }

    /**
     * A refusal body the proxy cuts, compressed or not, past the 64 KiB it reads or cut by the backend's end of file,
     * goes without the backend's digests of its content and of its representation, which no longer match what the
     * client gets (a truncated body, or none and no coding), and with its other headers. (Before, they were relayed,
     * and a client that checks them took the cut for a corruption.)
     */
    @ParameterizedTest
    @CsvSource({"gzip, past the proxy's cap", "gzip, cut by the backend's end of file",
            "identity, past the proxy's cap", "identity, cut by the backend's end of file"})
    void dropsTheDigestsOfARefusalBodyItCannotRelayWhole(String coding, String how) throws Exception {
        byte[] content = new byte[100 * 1024];
        new java.util.Random(7).nextBytes(content);
        byte[] body = coding.equals("gzip") ? gzip(content) : content;
        int sent = how.startsWith("cut") ? body.length / 2 : body.length; // half: less than the cap
        String digest = Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-256").digest(body));
        String md5 = Base64.getEncoder().encodeToString(MessageDigest.getInstance("MD5").digest(body));
        RawBackend backend = rawBackend(RawBackend.answeringThenClosing(RawBackend.raw("HTTP/1.1 403 Forbidden\r\n"
                + "Content-Type: application/octet-stream\r\nContent-Encoding: " + coding + "\r\n"
                + "Content-Digest: sha-256=:" + digest + ":\r\nRepr-Digest: sha-256=:" + digest + ":\r\n"
                + "Digest: SHA-256=" + digest + "\r\nContent-MD5: " + md5 + "\r\nX-Reason: policy\r\n"
                + "Content-Length: " + body.length + "\r\n\r\n"
                + new String(body, 0, sent, StandardCharsets.ISO_8859_1))));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat").add("Accept-Encoding", "gzip"));

            assertThat(response.status()).as("%s", response).isEqualTo(403);
            assertThat(response.body().length).as("cut").isLessThan(body.length);
            assertThat(response.header("X-Reason")).isEqualTo("policy");
            for (String name : List.of("Content-Digest", "Repr-Digest", "Digest", "Content-MD5")) {
                assertThat(response.header(name)).as(name).isNull();
            }
        }
    }

    private static byte[] gzip(byte[] content) throws IOException {
        ByteArrayOutputStream gzipped = new ByteArrayOutputStream();
        try (GZIPOutputStream gzip = new GZIPOutputStream(gzipped)) {
            gzip.write(content);
        }
        return gzipped.toByteArray();
    }

    // ---- broken 101s, unreachable and silent backends ----

    /** Broken 101 responses; {@code {accept}} stands for the right {@code Sec-WebSocket-Accept} line. */
    enum Broken101 {
        WRONG_ACCEPT("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: " + RawFrames.SAMPLE_ACCEPT + "\r\n\r\n"),
        MISSING_ACCEPT("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        UPGRADE_H2C("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n{accept}\r\n"),
        NO_UPGRADE_HEADER("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n{accept}\r\n"),
        UNOFFERED_SUBPROTOCOL("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "{accept}Sec-WebSocket-Protocol: unoffered\r\n\r\n"),
        // RFC 6455 section 4.1: the accept value exactly, one Upgrade value that is "websocket", no extension unoffered.
        ACCEPT_IN_OTHER_CASE("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "{ACCEPT}\r\n"),
        SECOND_ACCEPT("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "{accept}Sec-WebSocket-Accept: " + RawFrames.SAMPLE_ACCEPT + "\r\n\r\n"),
        UPGRADE_H2C_AND_WEBSOCKET("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c, websocket\r\n"
                + "Connection: Upgrade\r\n{accept}\r\n"),
        JETTY_INTERNAL_EXTENSION("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "{accept}Sec-WebSocket-Extensions: @validation\r\n\r\n"),
        UNOFFERED_EXTENSION("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "{accept}Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");

        private final String script;

        Broken101(String script) {
            this.script = script;
        }

        RawBackend.Reply reply() {
            return request -> {
                String accept = RawFrames.accept(request.header("Sec-WebSocket-Key"));
                return script.replace("{accept}", "Sec-WebSocket-Accept: " + accept + "\r\n")
                        .replace("{ACCEPT}", "Sec-WebSocket-Accept: " + swapCase(accept) + "\r\n");
            };
        }

        private static String swapCase(String value) {
            StringBuilder swapped = new StringBuilder(value.length());
            for (char c : value.toCharArray()) {
                swapped.append(Character.isUpperCase(c) ? Character.toLowerCase(c) : Character.toUpperCase(c));
            }
            return swapped.toString();
        }
    }

    /**
     * Matrix rows B2 and B3: a 101 with a wrong or missing {@code Sec-WebSocket-Accept}, or one that does not switch
     * to WebSocket, must not become a tunnel; nor one that RFC 6455 section 4.1 says the client must fail (the accept
     * value in another case or twice, another protocol beside {@code websocket}, an extension the proxy did not offer).
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(names = {"WRONG_ACCEPT", "MISSING_ACCEPT", "UPGRADE_H2C", "NO_UPGRADE_HEADER", "ACCEPT_IN_OTHER_CASE",
            "SECOND_ACCEPT", "UPGRADE_H2C_AND_WEBSOCKET", "JETTY_INTERNAL_EXTENSION", "UNOFFERED_EXTENSION"})
    void answers502ForA101ThatIsNotAValidWebSocketUpgrade(Broken101 broken) throws Exception {
        RawBackend backend = rawBackend(RawBackend.answering(broken.reply()));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertProxyError(response, 502);
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        assertConnectFailedReported(502);
    }

    /** A rejected 101 leaves the backend's socket in the upgraded state: the proxy must close it, not idle it out. */
    @ParameterizedTest(name = "{0}")
    @EnumSource(names = {"WRONG_ACCEPT", "UNOFFERED_SUBPROTOCOL"})
    void closesTheBackendConnectionWhenItRejectsABroken101(Broken101 broken) throws Exception {
        RawBackend backend = rawBackend(RawBackend.answering(broken.reply()));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(upgrade("/ws/chat")).status()).isEqualTo(502);
        }
        assertThat(backend.nextEnd(3)).as("backend connection").isIn("eof", "reset");
    }

    @Test
    void answers502QuicklyWhenTheBackendPortIsClosed() throws Exception {
        int closedPort = Clients.closedPort();
        Backend closed = Backend.of("ws://127.0.0.1:" + closedPort);
        startProxy(closed);
        try (RawHttp client = RawHttp.connect(proxy)) {
            long started = System.nanoTime();
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(1));
            assertProxyError(response, 502);
            assertThat(response.bodyText()).doesNotContain(String.valueOf(closedPort));
        }
        RecordingListener.ConnectFailed failed = assertConnectFailedReported(502);
        assertThat(failed.backend()).isEqualTo(closed);
    }

    @Test
    void answers502WhenTheBackendHostDoesNotResolve() throws Exception {
        startProxy(Backend.of("ws://backend.invalid:8080"));
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertProxyError(response, 502);
            assertThat(response.bodyText()).doesNotContain("backend.invalid");
        }
        assertConnectFailedReported(502);
    }

    @Test
    void answers504WhenTheBackendStaysSilentAndClosesItsSocket() throws Exception {
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.silent()));
        startProxy(SHORT_CONNECT_TIMEOUT, builder -> builder.route("/ws/", backend.backend()));
        try (RawHttp client = RawHttp.connect(proxy)) {
            long started = System.nanoTime();
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));
            Duration elapsed = Duration.ofNanos(System.nanoTime() - started);

            assertProxyError(response, 504);
            assertThat(elapsed).isGreaterThanOrEqualTo(SHORT_CONNECT_TIMEOUT.minusMillis(50))
                    .isLessThan(SHORT_CONNECT_TIMEOUT.plusSeconds(2));
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        backend.nextRequest();
        assertThat(backend.nextEnd(3)).as("backend connection").isIn("eof", "reset");
        assertConnectFailedReported(504);
    }

    @Test
    void waitsForABackendSilentPastJettysIdleTimeoutWhileTheRouteAllowsIt() throws Exception {
        // Jetty gives a backend socket an idle timeout of 30 s; this route gives the handshake 45 s (failover 60 s).
        // The backend says nothing for 32 s after the request, then answers 101, unless the proxy gave up first.
        BlockingQueue<String> backendSaw = new LinkedBlockingQueue<>();
        ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        resources.add(server);
        Thread backendThread = new Thread(() -> answerAfterSilence(server, 32_000, backendSaw), "silent-backend");
        backendThread.setDaemon(true);
        backendThread.start();
        Backend backend = Backend.of("ws://127.0.0.1:" + server.getLocalPort());
        startProxy(Duration.ofSeconds(45), builder -> builder.route("/ws/", route -> route.backends(backend)
                .failover(1, Duration.ofSeconds(60))));
        URI uri = proxy.uri();
        try (Socket socket = new Socket(uri.getHost(), uri.getPort()); RawHttp client = RawHttp.over(socket)) {
            socket.setSoTimeout(45_000);
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertThat(backendSaw.poll(5, TimeUnit.SECONDS)).isEqualTo("answered after its silence");
            assertThat(response.status()).as("%s", response).isEqualTo(101);
            client.sendText("late but alive");
            assertThat(client.readFrame().text()).isEqualTo("late but alive");
            assertThat(client.closeHandshake(1000, "bye").closeCode()).isEqualTo(1000);
        }
        assertThat(backendSaw.poll(5, TimeUnit.SECONDS)).isEqualTo("close:1000");
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
        assertThat(listener.all(RecordingListener.Rejected.class)).isEmpty();
        assertThat(proxy.backendStatus("/ws/")).singleElement().satisfies(status -> {
            assertThat(status.state()).isEqualTo(BackendStatus.State.UP);
            assertThat(status.recentFailures()).isZero();
        });
    }

    /**
     * One connection: reads the request head, reads nothing more for {@code silenceMillis} (an end of stream then
     * means that the proxy gave up), answers {@code 101}, echoes text frames and answers the close frame. Tells
     * {@code saw} what happened.
     */
    private static void answerAfterSilence(ServerSocket server, int silenceMillis, BlockingQueue<String> saw) {
        try (Socket socket = server.accept()) {
            InputStream in = new BufferedInputStream(socket.getInputStream());
            OutputStream out = socket.getOutputStream();
            ByteArrayOutputStream head = new ByteArrayOutputStream();
            while (!head.toString(StandardCharsets.ISO_8859_1).endsWith("\r\n\r\n")) {
                int b = in.read();
                if (b == -1) {
                    saw.add("no request");
                    return;
                }
                head.write(b);
            }
            socket.setSoTimeout(silenceMillis);
            long started = System.nanoTime();
            try {
                int b = in.read();
                saw.add((b == -1 ? "the proxy gave up after " : "a byte from the proxy after ")
                        + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started) + " ms");
                return;
            } catch (SocketTimeoutException expected) {
                // Silent for the whole time, and the proxy still waits.
            }
            socket.setSoTimeout(10_000);
            RawBackend.Request request = new RawBackend.Request(head.toString(StandardCharsets.ISO_8859_1));
            out.write(RawBackend.switching(null).response(request).getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            saw.add("answered after its silence");
            while (true) {
                RawFrames.Frame frame = RawFrames.read(in);
                if (frame.opcode() == RawFrames.CLOSE) {
                    RawFrames.write(out, RawFrames.encode(RawFrames.CLOSE, frame.payload(), false));
                    saw.add("close:" + frame.closeCode());
                    return;
                }
                RawFrames.write(out, RawFrames.encode(frame.opcode(), frame.payload(), false));
            }
        } catch (IOException e) {
            saw.add("error: " + e);
        }
    }

    @Test
    void answers503WithRetryAfterWhenTheSelectorHasNoBackend() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(builder -> builder.route("/ws/", r -> r.backends(backend.backend())
                .backendSelector(context -> null)));
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertProxyError(response, 503);
            assertThat(response.header("Retry-After")).isNotBlank();
        }
        assertThat(backend.httpConnections).hasValue(0);
        assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(503);
    }

    @Test
    void selectorThatThrowsGivesA500WithoutDetail() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(builder -> builder.route("/ws/", r -> r.backends(backend.backend())
                .backendSelector(context -> {
                    throw new IllegalStateException("selector exploded in java.lang.Secret");
                })));
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade("/ws/chat"));

            assertProxyError(response, 500);
            assertThat(response.bodyText()).doesNotContain("exploded");
        }
        assertThat(backend.httpConnections).hasValue(0);
    }

    // ---- the client leaves, or speaks early ----

    /**
     * {@link WebSocketProxy#sessions()} lists sessions still in their handshake, and closing one between the backend's
     * {@code 101} and the client's gives the client its {@code 101}, then the close: listeners hear of an opened
     * session, then of its close (they heard of the close only), and the backend's answer to the close is read. No
     * hook sits in that window, so many handshakes race a loop that closes whatever session it finds.
     */
    @Test
    void reportsASessionClosedDuringItsHandshakeAsOpenedFirst() throws Exception {
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.switching(null)));
        startProxy(builder -> builder.route("/ws/", r -> r.backends(backend.backend())
                .timeoutPolicy(TimeoutPolicy.custom().connect(CONNECT_TIMEOUT).close(Duration.ofMinutes(1)).build())));
        for (int i = 0; i < 300; i++) {
            CompletableFuture<Integer> status = CompletableFuture.supplyAsync(() -> {
                try (RawHttp client = RawHttp.connect(proxy)) {
                    return client.exchange(upgrade("/ws/chat")).status();
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            while (!status.isDone()) {
                for (ProxySession session : proxy.sessions()) {
                    session.close(4000, "closed during the handshake");
                }
                Thread.onSpinWait();
            }
            assertThat(status.get()).isIn(101, 503);
        }

        // Within a close timeout of a minute: each backend's answer to its close was read.
        Clients.assertNoLeaks(proxy, null);
        List<String> opened = new ArrayList<>();
        for (Object event : listener.events) {
            if (event instanceof RecordingListener.Opened open) {
                opened.add(open.sessionId());
            } else if (event instanceof RecordingListener.Closed close) {
                assertThat(opened).as("sessions opened before %s closed", close.sessionId())
                        .contains(close.sessionId());
            }
        }
        assertThat(listener.all(RecordingListener.Closed.class)).hasSameSizeAs(opened);
    }

    @ParameterizedTest(name = "client {0}")
    @ValueSource(strings = {"closes", "resets"})
    void closesTheBackendWhenTheClientLeftDuringTheBackendHandshake(String how) throws Exception {
        RawBackend backend = rawBackend(RawBackend.holding(RawBackend.switching(null)));
        startProxy(backend.backend());
        RawHttp client = RawHttp.connect(proxy);
        client.send(upgrade("/ws/chat"));
        backend.nextRequest();
        if (how.equals("resets")) {
            client.reset();
        } else {
            client.close();
        }

        backend.release();

        // Either the proxy never opens the session (EOF) or it closes the new backend session at once (1001).
        assertThat(backend.nextEnd(5)).isIn("eof", "reset", "close:1001");
        Clients.assertNoLeaks(proxy, null);
        assertThat(listener.all(RecordingListener.Opened.class)).hasSameSizeAs(
                listener.all(RecordingListener.Closed.class));
    }

    @ParameterizedTest(name = "client {0}")
    @ValueSource(strings = {"closes", "resets", "half-closes", "closes its TLS connection",
            "speaks early, then closes"})
    void abortsTheBackendHandshakeAsSoonAsTheClientLeaves(String how) throws Exception {
        // A backend that never answers: only the proxy noticing the client can end its connection before the
        // connect timeout, which is a minute here. One connection per client address and one pending handshake per
        // backend: a second client gets through only if the first one's slots were given back.
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.silent()));
        boolean tls = how.contains("TLS");
        startProxy(Duration.ofMinutes(1), builder -> (tls
                ? builder.tls(ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD))
                : builder).maxConnectionsPerIp(1).maxPendingBackendHandshakes(1).route("/ws/", backend.backend()));
        RawHttp client = connect(tls);
        client.send(upgrade("/ws/chat"));
        backend.nextRequest();
        if (how.startsWith("speaks early")) {
            client.send(RawFrames.text("early", true));
        }
        switch (how) {
            case "resets" -> client.reset();
            case "half-closes" -> {
                client.shutdownOutput();
                // Nothing is written to a client that left, not even an error page: the proxy just closes.
                assertThat(client.closedWithin(Duration.ofSeconds(20))).as("closed, nothing written").isTrue();
                client.close();
            }
            default -> client.close();
        }

        assertThat(backend.nextEnd(20)).isIn("eof", "reset");
        await().untilAsserted(() -> assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(499));
        // No session, and nothing held against the backend.
        assertThat(listener.all(RecordingListener.Opened.class)).isEmpty();
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
        assertThat(proxy.backendStatus("/ws/").get(0).recentFailures()).isZero();
        try (RawHttp next = connect(tls)) {
            next.send(upgrade("/ws/chat"));
            assertThat(backend.nextRequest()).as("the next client's request, through the same slots").isNotNull();
        }
        assertThat(backend.nextEnd(20)).isIn("eof", "reset");
        Clients.assertNoLeaks(proxy, null);
    }

    @Test
    void watchesTheClientAgainOnTheAttemptAfterAFailedOne() throws Exception {
        int closedPort = Clients.closedPort();
        RawBackend silent = rawBackend(RawBackend.answering(RawBackend.silent()));
        // Round robin starts with the first backend: refused at once, then the silent one, where the client leaves.
        startProxy(Duration.ofMinutes(1), builder -> builder.route("/ws/",
                r -> r.backends(Backend.of("ws://127.0.0.1:" + closedPort), silent.backend())));
        RawHttp client = RawHttp.connect(proxy);
        client.send(upgrade("/ws/chat"));
        silent.nextRequest();
        client.close();

        assertThat(silent.nextEnd(20)).isIn("eof", "reset");
        await().untilAsserted(() -> assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(499));
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).hasSize(1);
        Clients.assertNoLeaks(proxy, null);
    }

    private RawHttp connect(boolean tls) throws Exception {
        return tls ? RawHttp.over(TestCertificates.LOCALHOST.socketTo(proxy.uri())) : RawHttp.connect(proxy);
    }

    /**
     * Queries the proxy must carry although the libraries it uses would refuse them. Not UTF-8: Jetty decodes a
     * session's query as UTF-8 and throws on bytes that are not, the client's doing, never a reason to count the
     * backend's valid 101 as a failure (a client could take every backend down so). Characters browsers send
     * unencoded ({ } | ^ ` \ and a stray %), which RFC 3986 does not allow in a query and java.net.URI refuses (400
     * before): they reach the backend percent-encoded, the escapes the client sent kept as they are.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '#', value = {
            "not UTF-8#/ws/chat?x=%FF&y=%E2%82#/ws/chat?x=%FF&y=%E2%82",
            "sent unencoded#/ws/chat?f={a}|b^c`d\\e&p=100%&q=%41#/ws/chat?f=%7Ba%7D%7Cb%5Ec%60d%5Ce&p=100%25&q=%41"})
    void relaysAQueryTheLibrariesWouldRefuseWithoutBlamingTheBackend(String what, String target, String forwarded)
            throws Exception {
        RawBackend backend = rawBackend(RawBackend.answering(RawBackend.switching(null)));
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(upgrade(target));
            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(backend.nextRequest().requestLine()).isEqualTo("GET " + forwarded + " HTTP/1.1");
            client.sendText("hello");
            assertThat(client.readFrame().text()).isEqualTo("hello");
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).isEmpty();
        assertThat(proxy.backendStatus("/ws/").get(0).recentFailures()).isZero();
    }

    @Test
    void relaysFramesPipelinedWithTheHandshakeInOrder() throws Exception {
        TestBackend backend = testBackend("b1");
        startProxy(backend.backend());
        try (RawHttp client = RawHttp.connect(proxy)) {
            ByteArrayOutputStream write = new ByteArrayOutputStream();
            write.write(upgrade("/ws/chat").bytes());
            write.write(RawFrames.text("one", true));
            write.write(RawFrames.text("two", true));
            client.send(write.toByteArray());

            assertThat(client.readResponse().status()).isEqualTo(101);
            assertThat(client.readFrame().text()).isEqualTo("one");
            assertThat(client.readFrame().text()).isEqualTo("two");
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.texts).containsExactly("one", "two");
    }

    @ParameterizedTest(name = "over TLS: {0}")
    @ValueSource(booleans = {false, true})
    void deliversFramesSentBeforeThe101OnlyOnceTheBackendAcceptedAndInOrder(boolean tls) throws Exception {
        RawBackend backend = rawBackend(RawBackend.holding(RawBackend.switching(null)));
        startProxy(builder -> (tls
                ? builder.tls(ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD))
                : builder).route("/ws/", backend.backend()));
        try (RawHttp client = tls ? RawHttp.over(TestCertificates.LOCALHOST.socketTo(proxy.uri()))
                : RawHttp.connect(proxy)) {
            // One frame with the request, read with it; two while the backend handshake is pending, read by the
            // proxy's watch on the client; all three wait for the 101, in order.
            ByteArrayOutputStream write = new ByteArrayOutputStream();
            write.write(upgrade("/ws/chat").bytes());
            write.write(RawFrames.text("with the request", true));
            client.send(write.toByteArray());
            backend.nextRequest();
            client.send(RawFrames.text("while pending", true));
            client.send(RawFrames.text("still pending", true));
            // The held backend reads while it waits: nothing may reach it before its 101.
            assertThat(backend.beforeReply.poll(300, TimeUnit.MILLISECONDS)).as("bytes before the backend's 101")
                    .isNull();

            backend.release();
            assertThat(client.readResponse().status()).isEqualTo(101);
            List<String> relayed = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                RawFrames.Frame frame = backend.frames.poll(5, TimeUnit.SECONDS);
                assertThat(frame).isNotNull();
                relayed.add(frame.text());
            }
            assertThat(relayed).containsExactly("with the request", "while pending", "still pending");
            assertThat(client.readFrame().text()).isEqualTo("with the request");
            assertThat(client.readFrame().text()).isEqualTo("while pending");
            assertThat(client.readFrame().text()).isEqualTo("still pending");
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.nextEnd(5)).isEqualTo("close:1000");
    }

    /**
     * Matrix row M8 past the proxy's watch on a waiting client, which holds the first 4 KiB a client sends before its
     * {@code 101} and then stops reading: 48 KiB of frames sent while the backend handshake is pending (some held by
     * the watch, the rest left in the socket) reach the backend only after its {@code 101}, all of them, in order,
     * and the session goes on to a clean close.
     */
    @ParameterizedTest(name = "over TLS: {0}")
    @ValueSource(booleans = {false, true})
    void deliversMoreThanTheWatchHoldsSentBeforeThe101InOrder(boolean tls) throws Exception {
        RawBackend backend = rawBackend(RawBackend.holding(RawBackend.switching(null)));
        startProxy(builder -> (tls
                ? builder.tls(ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD))
                : builder).route("/ws/", backend.backend()));
        List<String> sent = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            sent.add(i + ":" + String.valueOf((char) ('a' + i)).repeat(3_000));
        }
        try (RawHttp client = tls ? RawHttp.over(TestCertificates.LOCALHOST.socketTo(proxy.uri()))
                : RawHttp.connect(proxy)) {
            client.send(upgrade("/ws/chat"));
            backend.nextRequest();
            for (String text : sent) {
                client.sendText(text);
            }
            assertThat(backend.beforeReply.poll(300, TimeUnit.MILLISECONDS)).as("bytes before the backend's 101")
                    .isNull();

            backend.release();
            assertThat(client.readResponse().status()).isEqualTo(101);
            // A frame may reach the backend in pieces (the relay forwards what has arrived); the backend echoes whole
            // frames only, so its echoes are not compared.
            List<String> relayed = new ArrayList<>();
            StringBuilder message = new StringBuilder();
            while (relayed.size() < sent.size()) {
                RawFrames.Frame frame = backend.frames.poll(5, TimeUnit.SECONDS);
                assertThat(frame).as("message %d at the backend", relayed.size()).isNotNull();
                assertThat(frame.opcode()).isEqualTo(message.length() == 0 ? RawFrames.TEXT : RawFrames.CONTINUATION);
                message.append(frame.text());
                if (frame.fin()) {
                    relayed.add(message.toString());
                    message.setLength(0);
                }
            }
            assertThat(relayed).containsExactlyElementsOf(sent);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.nextEnd(5)).isEqualTo("close:1000");
    }

    /**
     * Matrix row M4: a backend that speaks first, its frames in the same write as its {@code 101} (the proxy reads
     * them with the response head, and hands them to the backend leg as it upgrades), among them one larger than
     * that first read, a fragmented message with a ping inside it and, last, its close. The client gets its
     * {@code 101} and then every frame, in order and byte for byte (a frame may come in pieces, the relay forwarding
     * what has arrived), the close last; its answer reaches the backend. Over {@code ws://} and {@code wss://}, whose
     * leftover bytes come from TLS's decrypted buffer instead of the socket's.
     */
    @ParameterizedTest(name = "backend over TLS: {0}")
    @ValueSource(booleans = {false, true})
    void relaysFramesTheBackendSendsInTheSameWriteAsIts101InOrder(boolean tls) throws Exception {
        byte[] everyByte = new byte[256];
        for (int i = 0; i < everyByte.length; i++) {
            everyByte[i] = (byte) i;
        }
        byte[] large = new byte[40 * 1024];
        new java.util.Random(4).nextBytes(large);
        byte[] frames = RawFrames.concat(
                RawFrames.text("first", false),
                RawFrames.encode(RawFrames.BINARY, everyByte, false),
                RawFrames.encode(false, RawFrames.TEXT, "frag-".getBytes(StandardCharsets.UTF_8), false),
                RawFrames.encode(RawFrames.PING, "p".getBytes(StandardCharsets.UTF_8), false),
                RawFrames.encode(true, RawFrames.CONTINUATION, "ment".getBytes(StandardCharsets.UTF_8), false),
                RawFrames.encode(RawFrames.BINARY, large, false),
                RawFrames.close(4000, "bye", false));
        RawBackend.Reply speaksFirst = request -> RawBackend.switching(null).response(request)
                + new String(frames, StandardCharsets.ISO_8859_1);
        RawBackend backend = rawBackend(tls ? RawBackend.answeringOverTls(speaksFirst, TestCertificates.LOCALHOST)
                : RawBackend.answering(speaksFirst));
        startProxy(builder -> builder.backendTls(BackendTls.trustStore(TestCertificates.LOCALHOST.pem()))
                .route("/ws/", backend.backend()));
        try (RawHttp client = RawHttp.connect(proxy)) {
            assertThat(client.exchange(upgrade("/ws/chat")).status()).isEqualTo(101);
            List<String> messages = new ArrayList<>();
            ByteArrayOutputStream message = new ByteArrayOutputStream();
            int messageOpcode = -1;
            RawFrames.Frame frame;
            while ((frame = client.readFrame()).opcode() != RawFrames.CLOSE) {
                if (frame.opcode() >= RawFrames.CLOSE) {
                    messages.add("opcode " + frame.opcode() + ": " + frame.text());
                    continue;
                }
                if (frame.opcode() != RawFrames.CONTINUATION) {
                    assertThat(messageOpcode).as("a new message while one is open").isEqualTo(-1);
                    messageOpcode = frame.opcode();
                }
                message.writeBytes(frame.payload());
                if (frame.fin()) {
                    byte[] whole = message.toByteArray();
                    messages.add(messageOpcode == RawFrames.TEXT ? "text: " + new String(whole, StandardCharsets.UTF_8)
                            : "binary: " + java.util.HexFormat.of().formatHex(whole));
                    message.reset();
                    messageOpcode = -1;
                }
            }
            RawFrames.assertCloseFrame(frame, 4000, "bye");
            assertThat(messages).as("what the client got before the close").containsExactly(
                    "text: first",
                    "binary: " + java.util.HexFormat.of().formatHex(everyByte),
                    "opcode " + RawFrames.PING + ": p",
                    "text: frag-ment",
                    "binary: " + java.util.HexFormat.of().formatHex(large));
            client.send(RawFrames.close(4000, "bye", true));
            assertThat(client.closedWithin(Duration.ofSeconds(10))).as("the client's connection ended").isTrue();
        }
        assertThat(backend.nextEnd(10)).as("the client's answer at the backend").isEqualTo("close:4000");
    }

    // ---- helpers ----

    private void assertProxyError(RawHttp.Response response, int status) {
        assertThat(response.status()).as("%s", response).isEqualTo(status);
        assertThat(response.header("Connection")).containsIgnoringCase("close");
        assertThat(response.header("Sec-WebSocket-Accept")).isNull();
        assertThat(response.bodyText()).doesNotContain("Exception").doesNotContain("java.");
    }

    private RecordingListener.ConnectFailed assertConnectFailedReported(int status) {
        assertThat(listener.all(RecordingListener.ConnectFailed.class)).hasSize(1);
        assertThat(listener.all(RecordingListener.Rejected.class))
                .extracting(RecordingListener.Rejected::status).containsExactly(status);
        RecordingListener.ConnectFailed failed = listener.first(RecordingListener.ConnectFailed.class);
        assertThat(failed.cause()).isNotNull();
        return failed;
    }

    /** A JDK WebSocket listener that records whole text messages, the close and errors. */
    static final class JdkListener implements WebSocket.Listener {
        final BlockingQueue<String> texts = new LinkedBlockingQueue<>();
        final BlockingQueue<String> closes = new LinkedBlockingQueue<>();
        final BlockingQueue<Throwable> errors = new LinkedBlockingQueue<>();
        private final StringBuilder text = new StringBuilder();

        @Override
        public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
            text.append(data);
            if (last) {
                texts.add(text.toString());
                text.setLength(0);
            }
            webSocket.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
            closes.add(statusCode + " " + reason);
            return null;
        }

        @Override
        public void onError(WebSocket webSocket, Throwable error) {
            errors.add(error);
        }
    }
}
