package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.tuple;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

import org.eclipse.jetty.http.HttpCompliance;
import org.eclipse.jetty.http.HttpException;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.RawHttp.Request;

/**
 * Requests that are not WebSocket upgrades (the nginx {@code map $http_upgrade} case): on a route they are proxied to
 * the backend as plain HTTP, or passed to the next handler on a {@link PlainHttp#NEXT_HANDLER} route; outside every
 * route they go to the next handler, or get {@code 404} without one.
 */
class PlainHttpTest {

    private TestBackend backend;
    private RawBackend raw;
    private NextHandler next;
    private WebSocketProxy proxy;
    private int closedPort;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        raw = RawBackend.answering(RawBackend.raw("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nraw-body"));
        next = new NextHandler();
        closedPort = Clients.closedPort();
        proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/ws/", backend.backend())
                .route("/mapped/", Backend.of(backend.uri() + "/base/"))
                .route("/nohost/", r -> r.backends(backend.backend()).preserveHost(false))
                .route("/p/", r -> r.backends(backend.backend()).plainHttp(PlainHttp.NEXT_HANDLER))
                .route("/down/", Backend.of("ws://127.0.0.1:" + closedPort))
                .route("/raw/", raw.backend())
                .nextHandler(next)
                .build();
        proxy.start();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, null, backend, raw);
    }

    private RawHttp.Response get(String target) throws Exception {
        return get(Request.plain("GET", target, RawHttp.host(proxy)));
    }

    private RawHttp.Response get(Request request) throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            return client.exchange(request);
        }
    }

    @Test
    void proxiesPlainHttpOnARouteToTheBackend() throws Exception {
        RawHttp.Response response = get("/ws/plain?q=1");

        assertThat(response.status()).as("%s", response).isEqualTo(200);
        assertThat(response.bodyText())
                .isEqualTo("plain:/ws/plain?q=1 host:" + RawHttp.host(proxy) + " xff:127.0.0.1 uid:null uid_:null");
        assertThat(next.requests).isEmpty();
    }

    @Test
    void carriesMoreThan64LongRequestsToOneBackendAtOnce() throws Exception {
        // Long polls (Socket.IO's fallback holds a GET for 25 s): Jetty's client would keep the 65th waiting behind
        // the other 64 on its connections to the backend, which holds every request until all 65 have arrived.
        int requests = 65;
        CountDownLatch arrived = new CountDownLatch(requests);
        CompletableFuture<Void> release = new CompletableFuture<>();
        Server holding = new Server();
        ServerConnector connector = new ServerConnector(holding);
        connector.setHost("127.0.0.1");
        holding.addConnector(connector);
        holding.setHandler(new Handler.Abstract.NonBlocking() {
            @Override
            public boolean handle(org.eclipse.jetty.server.Request request, Response response, Callback callback) {
                arrived.countDown();
                release.whenComplete((ignored, failure) -> Content.Sink.write(response, true, "held", callback));
                return true;
            }
        });
        holding.start();
        List<RawHttp> clients = new ArrayList<>();
        try (WebSocketProxy polls = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/poll/", Backend.of("ws://127.0.0.1:" + connector.getLocalPort())).build()) {
            polls.start();
            for (int i = 0; i < requests; i++) {
                RawHttp client = RawHttp.connect(polls);
                clients.add(client);
                client.send(Request.plain("GET", "/poll/" + i, RawHttp.host(polls)));
            }
            assertThat(arrived.await(10, TimeUnit.SECONDS)).as("%d of %d requests at the backend",
                    requests - arrived.getCount(), requests).isTrue();
            release.complete(null);
            for (RawHttp client : clients) {
                RawHttp.Response response = client.readResponse();
                assertThat(response.status()).isEqualTo(200);
                assertThat(response.bodyText()).isEqualTo("held");
            }
        } finally {
            release.complete(null);
            for (RawHttp client : clients) {
                client.close();
            }
            holding.stop();
        }
    }

    @Test
    void dropsTheResponseHeadersTheBackendNamesInConnection() throws Exception {
        RawBackend naming = RawBackend.answering(RawBackend.raw("HTTP/1.1 200 OK\r\nConnection: X-Debug, x_trace\r\n"
                + "X-Debug: internal\r\nX-Trace: internal\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"));
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", naming.backend())
                .build()) {
            proxying.start();
            RawHttp.Response response;
            try (RawHttp client = RawHttp.connect(proxying)) {
                response = client.exchange(Request.plain("GET", "/x", RawHttp.host(proxying)));
            }
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.header("X-Kept")).isEqualTo("yes");
            assertThat(response.header("X-Debug")).as("named in the backend's Connection").isNull();
            assertThat(response.header("X-Trace")).as("named with _ for -").isNull();
        } finally {
            naming.close();
        }
    }

    @Test
    void answers502ForAResponseHeadLargerThanTheClientsConnectionWrites() throws Exception {
        // Jetty's generator failed the head at the first write: the client got Jetty's 500, the access line read
        // status=200 reason=client_left, and Jetty logged a WARN naming the request with its query (a token in it).
        RawBackend large = RawBackend.answering(RawBackend.raw("HTTP/1.1 200 OK\r\nX-Debug: " + "d".repeat(20_000)
                + "\r\nContent-Length: 2\r\n\r\nok"));
        RecordingListener listener = new RecordingListener();
        try (large; WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).listener(listener)
                .route("/", large.backend()).build();
                StandardError.Capture log = StandardError.capture()) {
            proxying.start();
            RawHttp.Response response;
            try (RawHttp client = RawHttp.connect(proxying)) {
                response = client.exchange(Request.plain("GET", "/page?access_token=secret", RawHttp.host(proxying)));
            }
            assertThat(response.status()).as("%s", response).isEqualTo(502);
            assertThat(response.header("X-Debug")).isNull();
            assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                    .containsExactly(502);
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text()).containsPattern(
                    " dev\\.wsproxy\\.access - sid=- .* method=GET status=502 reason=backend_failed\n"));
            assertThat(log.text()).doesNotContain("secret");
            assertThat(proxying.backendStatus("/").get(0).recentFailures()).as("the backend answered").isZero();
        }
    }

    @Test
    void stopsReadingABackendsResponseHeadPast64KibAndAnswers502() throws Exception {
        // Jetty's client sets no limit on a response head (the WebSocket leg's parser stops at 64 KiB): a backend that
        // never ended its head had it buffered without bound, 16 MiB here, and the client waited for the route's idle
        // timeout. The backend answers the request it read: a reply sent before it would be Jetty's unsolicited
        // response, dropped with its connection, and the request sent again on a connection this backend never serves.
        String endless = "HTTP/1.1 200 OK\r\nX-Flood: " + "f".repeat(16 << 20);
        RawBackend flooding = RawBackend.answering(RawBackend.raw(endless));
        exchangeThrough(flooding, host -> Request.plain("GET", "/page", host), (proxying, response) -> {
            assertThat(response.status()).as("%s", response).isEqualTo(502);
            assertThat(flooding.nextEnd(10)).as("the backend's write of its head was cut").isEqualTo("reset");
        });
    }

    @Test
    void relaysA204ThatCameWithAContentLengthWithoutIt() throws Exception {
        // RFC 9110 section 8.6 forbids the length on a 204, and Jetty's client reads no body after one; Jetty's server
        // kept the length and failed the response for the bytes never written: the client got Jetty's 500, logged as
        // 499 client_left. nginx drops the length of a 204.
        RawBackend empty = RawBackend.answering(RawBackend.raw("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n"
                + "X-Kept: yes\r\n\r\nhello"));
        try (empty; WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", empty.backend())
                .build();
                StandardError.Capture log = StandardError.capture()) {
            proxying.start();
            RawHttp.Response response;
            try (RawHttp client = RawHttp.connect(proxying)) {
                response = client.exchange(Request.plain("DELETE", "/items/1", RawHttp.host(proxying)));
            }
            assertThat(response.status()).as("%s", response).isEqualTo(204);
            assertThat(response.header("Content-Length")).isNull();
            assertThat(response.header("X-Kept")).isEqualTo("yes");
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text()).containsPattern(
                    " dev\\.wsproxy\\.access - sid=- .* method=DELETE status=204 reason=-\n"));
        }
    }

    @Test
    void answers502ToARouteWhoseBackendSpeaksAnotherProtocolFirst() throws Exception {
        // A route pointed at the wrong port, an SSH server's: its banner comes before any request and the connection
        // stays open. Jetty's client reads bytes that come before its request as an unsolicited response and closes
        // that connection; the request goes on a new one, where the same happens or the banner fails it.
        List<Socket> accepted = new CopyOnWriteArrayList<>();
        try (ServerSocket ssh = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
            Thread banners = new Thread(() -> {
                try {
                    while (true) {
                        Socket socket = ssh.accept();
                        accepted.add(socket);
                        socket.getOutputStream().write("SSH-2.0-OpenSSH_9.2p1\r\n".getBytes(StandardCharsets.US_ASCII));
                    }
                } catch (IOException e) {
                    // the test is over
                }
            }, "ssh-banners");
            banners.setDaemon(true);
            banners.start();
            try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                    .route("/", Backend.of("ws://127.0.0.1:" + ssh.getLocalPort())).build()) {
                proxying.start();
                try (RawHttp client = RawHttp.connect(proxying)) {
                    RawHttp.Response response = client.exchange(Request.plain("GET", "/page", RawHttp.host(proxying)));
                    assertThat(response.status()).as("plain HTTP: %s", response).isEqualTo(502);
                }
                try (RawHttp client = RawHttp.connect(proxying)) {
                    RawHttp.Response response = client.exchange(Request.upgrade("/ws", RawHttp.host(proxying)));
                    assertThat(response.status()).as("an upgrade: %s", response).isEqualTo(502);
                }
            } finally {
                for (Socket socket : accepted) {
                    socket.close();
                }
            }
        }
    }

    @Test
    void answers502ForA101ToAPlainRequestAndClosesTheBackendConnection() throws Exception {
        // The request offered no upgrade (the proxy drops Upgrade): ProxyHandler wrote the 101 to the client, bare,
        // while its connection went on as HTTP, and Jetty's client kept the backend connection as upgraded to nobody.
        RawBackend switching = RawBackend.answering(RawBackend.raw("HTTP/1.1 101 Switching Protocols\r\n"
                + "Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n"));
        exchangeThrough(switching, host -> Request.plain("GET", "/page", host), (proxying, response) -> {
            assertThat(response.status()).as("%s", response).isEqualTo(502);
            assertThat(switching.nextEnd(5)).as("the backend connection").isEqualTo("eof");
        });
    }

    @Test
    void logsAClientThatLeavesDuringItsResponseAsGoneNotAsABackendFailure() throws Exception {
        // ProxyHandler aborts the backend's response when a write to the client fails: the access line read
        // status=200 reason=backend_failed for a download the client cut, and the backend was fine.
        int size = 16 << 20;
        RawBackend large = RawBackend.answering(RawBackend.raw("HTTP/1.1 200 OK\r\nContent-Length: " + size
                + "\r\n\r\n" + "x".repeat(size)));
        try (large; WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", large.backend()).build();
                StandardError.Capture log = StandardError.capture()) {
            proxying.start();
            try (Socket client = new Socket("127.0.0.1", proxying.uri().getPort())) {
                client.getOutputStream().write(("GET /download HTTP/1.1\r\nHost: " + RawHttp.host(proxying)
                        + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                byte[] head = client.getInputStream().readNBytes(12);
                assertThat(new String(head, StandardCharsets.US_ASCII)).isEqualTo("HTTP/1.1 200");
                client.setSoLinger(true, 0); // a reset: the proxy's next write fails
            }
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text())
                    .containsPattern(" dev\\.wsproxy\\.access - sid=- .* route=/ .* method=GET status=200 "
                            + "reason=client_left\n"));
            assertThat(log.text()).doesNotContain("backend_failed");
        }
    }

    @Test
    void waitsForABackendQuietLongerThanTheConnectorsIdleTimeout() throws Exception {
        RawBackend slow = RawBackend.holding(RawBackend.raw("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate"));
        WebSocketProxy mounted = ProxyBuilder.create().route("/", slow.backend()).build();
        Server server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        connector.setIdleTimeout(300);
        server.addConnector(connector);
        server.setHandler(mounted.handler());
        server.start();
        try (RawHttp client = RawHttp.over(new Socket("127.0.0.1", connector.getLocalPort()))) {
            client.send(Request.plain("GET", "/poll", "127.0.0.1:" + connector.getLocalPort()));
            slow.nextRequest();

            // A long poll: three of the connector's idle timeouts without a byte either way.
            client.assertNothingWithin(Duration.ofMillis(900));
            slow.release();
            RawHttp.Response response = client.readResponse();

            assertThat(response.status()).as("%s", response).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("late");
        } finally {
            server.stop();
            slow.close();
        }
    }

    @Test
    void answers504WhenTheBackendIsQuietForTheRoutesIdleTimeout() throws Exception {
        RawBackend silent = RawBackend.answering(RawBackend.silent());
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", r -> r.backends(silent.backend()).timeoutPolicy(TimeoutPolicy.idle(Duration.ofMillis(300))))
                .build()) {
            proxying.start();
            try (RawHttp client = RawHttp.connect(proxying)) {
                RawHttp.Response response = client.exchange(Request.plain("GET", "/poll", RawHttp.host(proxying)));

                assertThat(response.status()).as("%s", response).isEqualTo(504);
            }
            assertThat(silent.nextEnd(5)).as("the backend connection").isEqualTo("eof");
        } finally {
            silent.close();
        }
    }

    @Test
    void passesEarlyHintsWithTheirEndToEndHeadersOnly() throws Exception {
        RawHttp.Response[] responses = hintsThenPage("Link: </style.css>; rel=preload\r\n"
                + "Connection: X-Internal, x_trace\r\nX-Internal: secret\r\nX-Trace: internal\r\n"
                + "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n");
        RawHttp.Response hints = responses[0];

        assertThat(hints.status()).isEqualTo(103);
        assertThat(hints.header("Link")).isEqualTo("</style.css>; rel=preload");
        assertThat(hints.header("X-Internal")).as("named in the backend's Connection").isNull();
        assertThat(hints.header("X-Trace")).as("named with _ for -").isNull();
        assertThat(hints.header("Connection")).isNull();
        assertThat(hints.header("Keep-Alive")).isNull();
        assertThat(hints.header("Proxy-Connection")).isNull();
        assertThat(responses[1].bodyText()).isEqualTo("ok");
    }

    @Test
    void earlyHintsCarryingAContentLengthDoNotStallTheResponse() throws Exception {
        // Passed on as it came, the length stalled Jetty's response: the client got neither the 103 nor the 200.
        RawHttp.Response[] responses = hintsThenPage("Link: </style.css>; rel=preload\r\nContent-Length: 7\r\n");

        assertThat(responses[0].status()).isEqualTo(103);
        assertThat(responses[0].header("Content-Length")).isNull();
        assertThat(responses[1].status()).isEqualTo(200);
        assertThat(responses[1].bodyText()).isEqualTo("ok");
    }

    @Test
    void passesEarlyHintsLargerThanTheClientsConnectionWritesWithTheHeadersThatFit() throws Exception {
        // Passed on whole, the 103's head overflowed Jetty's generator: the client got neither the 103 nor the 200 (its
        // read timed out), Jetty logged a WARN, and the access line read status=200 reason=client_left. Hints are
        // optional: what does not fit is dropped, as from a refusal, and the response goes on.
        RawHttp.Response[] responses = hintsThenPage("X-Debug: " + "d".repeat(20_000)
                + "\r\nLink: </style.css>; rel=preload\r\n");

        assertThat(responses[0].status()).as("%s", responses[0]).isEqualTo(103);
        assertThat(responses[0].header("X-Debug")).isNull();
        assertThat(responses[0].header("Link")).as("the header after it, which fits")
                .isEqualTo("</style.css>; rel=preload");
        assertThat(responses[1].status()).isEqualTo(200);
        assertThat(responses[1].bodyText()).isEqualTo("ok");
    }

    @ParameterizedTest
    @ValueSource(strings = {"102 Processing", "103 Early Hints\r\nLink: </style.css>; rel=preload"})
    void sendsAnHttp10ClientNoInterimResponse(String interim) throws Exception {
        // RFC 9110 section 15.2: no 1xx to an HTTP/1.0 client, which reads the first status line as the response
        // (HAProxy's httpchk and ab speak HTTP/1.0). Jetty writes what ProxyHandler passes on, whatever the version.
        RawBackend hinting = RawBackend.answering(RawBackend.raw("HTTP/1.1 " + interim
                + "\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        Function<String, Request> http10 = host -> Request.plain("GET", "/page", host).version("HTTP/1.0");
        exchangeThrough(hinting, http10, (proxying, response) -> {
            assertThat(response.status()).as("%s", response).isEqualTo(200);
            assertThat(response.bodyText()).isEqualTo("ok");
        });
    }

    @Test
    void dropsAnInterimResponseOtherThan102Or103AndRelaysTheFinalOne() throws Exception {
        // A 1xx none of Jetty's client handlers takes (104 Upload Resumption Supported, from resumable upload
        // servers) reached ProxyHandler as the final response: the client got "104 104" and then nothing, not even
        // the backend's 201, and no access line was written.
        RawBackend resumable = RawBackend.answering(RawBackend.raw("HTTP/1.1 104 Upload Resumption Supported\r\n"
                + "Location: /uploads/1\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"));
        Function<String, Request> upload = host -> Request.plain("POST", "/uploads", host)
                .add("Content-Length", "5").body("hello");
        try (StandardError.Capture log = StandardError.capture()) {
            exchangeThrough(resumable, upload, (proxying, response) -> {
                assertThat(response.status()).as("%s", response).isEqualTo(201);
                assertThat(response.bodyText()).isEqualTo("ok");
                // While the proxy runs: its stop would end an exchange whose access line is still to come.
                await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text())
                        .containsPattern(" dev\\.wsproxy\\.access - sid=- .* method=POST status=201 reason=-\n"));
            });
        }
    }

    /** What a test checks of one exchange through a proxy, while that proxy still runs. */
    @FunctionalInterface
    private interface ExchangeCheck {
        void check(WebSocketProxy proxying, RawHttp.Response response) throws Exception;
    }

    /**
     * Starts a proxy whose one route goes to {@code backend}, sends it on a connection of its own the request that
     * {@code request} builds for the proxy's {@code Host}, and hands the response to {@code check} before the proxy
     * and the backend are closed.
     */
    private static void exchangeThrough(RawBackend backend, Function<String, Request> request, ExchangeCheck check)
            throws Exception {
        try (backend; WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", backend.backend()).build()) {
            proxying.start();
            RawHttp.Response response;
            try (RawHttp client = RawHttp.connect(proxying)) {
                response = client.exchange(request.apply(RawHttp.host(proxying)));
            }
            check.check(proxying, response);
        }
    }

    /** A backend answers {@code 103} with {@code hintHeaders}, then {@code 200 ok}; returns what a client reads. */
    private static RawHttp.Response[] hintsThenPage(String hintHeaders) throws Exception {
        RawBackend hinting = RawBackend.answering(RawBackend.raw("HTTP/1.1 103 Early Hints\r\n" + hintHeaders
                + "\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", hinting.backend())
                .build()) {
            proxying.start();
            try (RawHttp client = RawHttp.connect(proxying)) {
                RawHttp.Response hints = client.exchange(Request.plain("GET", "/page", RawHttp.host(proxying)));
                return new RawHttp.Response[] {hints, client.readResponse()};
            }
        } finally {
            hinting.close();
        }
    }

    @Test
    void refusesConnectAndTraceWith405AndForwardsNeither() throws Exception {
        RawHttp.Response trace = get(Request.plain("TRACE", "/ws/plain", RawHttp.host(proxy)));
        assertThat(trace.status()).isEqualTo(405);
        assertThat(trace.header("Allow")).as("RFC 9110 section 15.5.6").contains("GET").contains("POST")
                .doesNotContain("TRACE").doesNotContain("CONNECT");
        assertThat(get(Request.plain("TRACE", "/raw/x", RawHttp.host(proxy))).status()).isEqualTo(405);
        RecordingListener recorded = new RecordingListener();
        try (WebSocketProxy tunnels = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", raw.backend())
                .listener(recorded).build()) {
            tunnels.start();
            try (RawHttp client = RawHttp.connect(tunnels)) {
                RawHttp.Response response = client.exchange(
                        Request.plain("CONNECT", "example.com:443", "example.com:443"));
                assertThat(response.status()).as("%s", response).isEqualTo(405);
            }
            try (RawHttp client = RawHttp.connect(tunnels)) {
                assertThat(client.exchange(Request.plain("TRACE", "/x", RawHttp.host(tunnels))).status())
                        .isEqualTo(405);
            }
        }
        assertThat(recorded.all(RecordingListener.Rejected.class)).as("reported, as every refusal on a route")
                .extracting(RecordingListener.Rejected::status, RecordingListener.Rejected::reason)
                .containsExactly(tuple(405, "CONNECT is not forwarded"), tuple(405, "TRACE is not forwarded"));
        assertThat(raw.requests).as("requests the raw backend got").isEmpty();
    }

    @Test
    void refusesATransferCodingOtherThanChunkedWith501AndForwardsNothing() throws Exception {
        // Jetty's parser takes "gzip, chunked" and undoes only the chunking: the proxy dropped Transfer-Encoding, as
        // it must, and the backend got the gzip-coded bytes as the body itself. RFC 9112 section 6.1; nginx answers
        // 501 too.
        RawHttp.Response response = get(Request.plain("POST", "/raw/x", RawHttp.host(proxy))
                .add("Transfer-Encoding", "gzip, chunked").body("5\r\nhello\r\n0\r\n\r\n"));

        assertThat(response.status()).as("%s", response).isEqualTo(501);
        assertThat(raw.requests).as("requests the raw backend got").isEmpty();
    }

    @Test
    void refusesAPathWithDotSegmentsWith400AndForwardsNothing() throws Exception {
        // As for an upgrade (HandshakeValidationTest): the route matched /raw/admin, the authenticator would have
        // seen /raw/x/../admin, and the backend got the path as sent.
        int before = backend.httpConnections.get();
        for (String target : List.of("/ws/x/../plain", "/raw/./x", "/raw/x/..;p/y")) {
            RawHttp.Response response = get(Request.plain("GET", target, RawHttp.host(proxy)));

            assertThat(response.status()).as("%s: %s", target, response).isEqualTo(400);
        }
        assertThat(raw.requests).as("requests the raw backend got").isEmpty();
        assertThat(backend.httpConnections).hasValue(before);
        assertThat(get(Request.plain("GET", "/ws/a.b/..c/plain", RawHttp.host(proxy))).status())
                .as("dots inside names").isEqualTo(200);
    }

    @Test
    void refusesARepeatedAuthorizationOrOriginWith400AndForwardsNothing() throws Exception {
        // As for an upgrade (HandshakeValidationTest): an authenticator read the first line, the backend got both.
        String host = RawHttp.host(proxy);
        List<Request> repeated = List.of(
                Request.plain("GET", "/raw/poll", host).add("Authorization", "Bearer mine")
                        .add("Authorization", "Bearer admin"),
                Request.plain("GET", "/raw/poll", host).add("authorization", "Bearer mine")
                        .add("Authorization", "Bearer admin"),
                Request.plain("GET", "/raw/poll", host).add("Origin", "https://app.example")
                        .add("Origin", "https://evil.example"));
        for (Request request : repeated) {
            RawHttp.Response response = get(request);

            assertThat(response.status()).as("%s: %s", request, response).isEqualTo(400);
        }
        assertThat(raw.requests).as("requests the raw backend got").isEmpty();

        RawHttp.Response single = get(Request.plain("GET", "/raw/poll", host)
                .add("Authorization", "Bearer mine").add("Origin", "https://app.example"));
        assertThat(single.status()).as("%s", single).isEqualTo(200);
        RawBackend.Request seen = raw.nextRequest();
        assertThat(seen.headers().get("authorization")).containsExactly("Bearer mine");
        assertThat(seen.headers().get("origin")).containsExactly("https://app.example");
    }

    @Test
    void replacesTheForwardedForOfAnUntrustedPeerOnPlainHttp() throws Exception {
        RawHttp.Response response = get(Request.plain("GET", "/ws/plain", RawHttp.host(proxy))
                .add("X-Forwarded-For", "1.2.3.4"));

        assertThat(response.bodyText()).contains(" xff:127.0.0.1 ");
    }

    @Test
    void takesTheClientFromTheForwardedForChainOfATrustedProxyOnPlainHttp() throws Exception {
        // The left-most hop is the client's own claim; the right-most that is not a trusted proxy is the client.
        String chain = "6.6.6.6, 198.51.100.7, 10.1.2.3";
        // One connection per request: this backend answers one request a connection.
        RawBackend heads = RawBackend.answering(
                RawBackend.raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"));
        try (heads; WebSocketProxy behindBalancer = ProxyBuilder.create().listen("127.0.0.1", 0)
                .trustedProxies("127.0.0.2/32", "10.0.0.0/8")
                .route("/", heads.backend())
                .build()) {
            behindBalancer.start();
            RawBackend.Request fromTrusted = getFrom("127.0.0.2", behindBalancer, heads, chain);

            assertThat(fromTrusted.header("X-Real-IP")).as("the right-most untrusted hop").isEqualTo("198.51.100.7");
            assertThat(fromTrusted.header("X-Forwarded-For")).as("the trusted chain, then the peer")
                    .isEqualTo(chain + ", 127.0.0.2");
            assertThat(fromTrusted.header("X-Forwarded-Proto")).isEqualTo("https");
            assertThat(fromTrusted.header("X-Forwarded-Host")).isEqualTo("chat.example.com");

            RawBackend.Request fromUntrusted = getFrom("127.0.0.1", behindBalancer, heads, chain);

            assertThat(fromUntrusted.header("X-Real-IP")).isEqualTo("127.0.0.1");
            assertThat(fromUntrusted.header("X-Forwarded-For")).isEqualTo("127.0.0.1");
            assertThat(fromUntrusted.header("X-Forwarded-Proto")).isEqualTo("http");
            assertThat(fromUntrusted.header("X-Forwarded-Host")).isEqualTo(RawHttp.host(behindBalancer));
        }
    }

    /**
     * A plain {@code GET} from a socket bound to {@code from} (a balancer at 127.0.0.2, say) carrying the forwarded
     * headers a balancer sets; returns the head {@code backend} received.
     */
    private static RawBackend.Request getFrom(String from, WebSocketProxy target, RawBackend backend,
            String forwardedFor) throws Exception {
        Socket socket = new Socket();
        socket.bind(new java.net.InetSocketAddress(from, 0));
        socket.connect(new java.net.InetSocketAddress("127.0.0.1", target.uri().getPort()), 5_000);
        try (RawHttp client = RawHttp.over(socket)) {
            RawHttp.Response response = client.exchange(Request.plain("GET", "/page", RawHttp.host(target))
                    .add("X-Forwarded-For", forwardedFor)
                    .add("X-Forwarded-Proto", "https")
                    .add("X-Forwarded-Host", "chat.example.com"));

            assertThat(response.status()).as("%s", response).isEqualTo(200);
        }
        return backend.nextRequest();
    }

    @Test
    void mapsPlainHttpOntoTheBackendBasePath() throws Exception {
        RawHttp.Response response = get("/mapped/plain?q=1");

        assertThat(response.status()).isEqualTo(200);
        assertThat(response.bodyText()).startsWith("plain:/base/plain?q=1 ");
    }

    @Test
    void mapsAPercentEncodedPlainHttpPathOntoTheBackendBaseWithoutReencodingIt() throws Exception {
        RawHttp.Response response = get("/mapped/a%20b/what%3F?q=%20");

        assertThat(response.status()).as("%s", response).isEqualTo(200);
        assertThat(response.bodyText()).startsWith("plain:/base/a%20b/what%3F?q=%20 ");
    }

    @Test
    void sendsTheBackendAuthorityAsHostOnPlainHttpWhenPreserveHostIsOff() throws Exception {
        RawHttp.Response response = get(Request.plain("GET", "/nohost/plain", "app.example"));

        assertThat(response.bodyText()).contains(" host:127.0.0.1:" + backend.port() + " ");
    }

    @Test
    void forwardsARequestHeadTheProxyAcceptedWithTheHeadersItAdds() throws Exception {
        // The head is within what the proxy's connector reads (8 KiB), but not with the forwarding headers and Via
        // added: Jetty's client writes no head over 8 KiB ("Request headers too large"), and the client got 502,
        // logged backend_failed, for a backend that had been sent nothing. A browser with many cookies sends such.
        String cookie = "session=" + "c".repeat(8_080);
        RawHttp.Response response = get(Request.plain("GET", "/raw/page", RawHttp.host(proxy)).add("Cookie", cookie));

        assertThat(response.status()).as("%s", response).isEqualTo(200);
        assertThat(raw.nextRequest().header("Cookie")).isEqualTo(cookie);
    }

    @Test
    void proxiesAPostWithItsBody() throws Exception {
        RawHttp.Response response = get(Request.plain("POST", "/ws/plain/form", RawHttp.host(proxy))
                .add("Content-Type", "text/plain").add("Content-Length", "5").body("hello"));

        assertThat(response.status()).isEqualTo(200);
        assertThat(response.bodyText()).startsWith("plain:/ws/plain/form ");
    }

    @Test
    void sendsTheContentLengthOfAnUploadThatExpects100Continue() throws Exception {
        // Jetty's ProxyHandler holds such a body back until the backend's 100, in a body of unknown length: without
        // the client's Content-Length the backend got it chunked (some refuse that, 411).
        RawBackend storing = RawBackend.readingBodies(
                RawBackend.raw("HTTP/1.1 201 Created\r\nContent-Length: 6\r\n\r\nstored"));
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", storing.backend())
                .build()) {
            proxying.start();
            RawHttp.Response response = upload(proxying, "/files/a", "hello");

            assertThat(response.status()).as("%s", response).isEqualTo(201);
            assertThat(response.bodyText()).isEqualTo("stored");
            RawBackend.Request seen = storing.nextRequest();
            assertThat(seen.header("Content-Length")).as("%s", seen.head()).isEqualTo("5");
            assertThat(seen.header("Transfer-Encoding")).as("%s", seen.head()).isNull();
            assertThat(seen.header("Expect")).isEqualTo("100-continue");
            assertThat(storing.nextBody()).isEqualTo("hello");
        } finally {
            storing.close();
        }
    }

    @Test
    void logsTheBackendsFinalAnswerToAnUploadThatExpects100ContinueAsItsResponse() throws Exception {
        // The backend refuses the upload before its body (curl expects 100-continue for any body over 1 KiB): Jetty's
        // client then fails the request, whose body never went, and ProxyHandler took the whole exchange for failed,
        // so the 413 the client got in full was logged reason=backend_failed.
        RawBackend refusing = RawBackend.answering(RawBackend.raw(
                "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big!"));
        Function<String, Request> upload = host -> Request.plain("PUT", "/files/a", host)
                .add("Content-Length", "5").add("Expect", "100-continue");
        try (StandardError.Capture log = StandardError.capture()) {
            exchangeThrough(refusing, upload, (proxying, response) -> {
                assertThat(response.status()).as("%s", response).isEqualTo(413);
                assertThat(response.bodyText()).isEqualTo("too big!");
                // While the proxy runs: its stop would end an exchange whose access line is still to come.
                await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text()).containsPattern(
                        " dev\\.wsproxy\\.access - sid=- .* method=PUT status=413 reason=-\n"));
            });
            assertThat(log.text()).doesNotContain("backend_failed");
        }
    }

    @Test
    void relaysTheUploadWhoseBackendSendsAnotherInterimResponseBeforeIts100Continue() throws Exception {
        // Jetty's client gives every response to a request that expects 100-continue to its continue handler, which
        // took a 104 (or a 102, a 103) for the final answer and failed the request: the client got 502
        // reason=backend_failed, and the backend's 100, the body and its 201 were lost. curl expects 100-continue
        // for any body over 1 KiB; a resumable-upload server sends 104 Upload Resumption Supported first.
        RawBackend resumable = RawBackend.readingBodiesAfter("HTTP/1.1 103 Early Hints\r\n"
                + "Link: </style.css>; rel=preload\r\n\r\n"
                + "HTTP/1.1 104 Upload Resumption Supported\r\nLocation: /uploads/1\r\n\r\n",
                RawBackend.raw("HTTP/1.1 201 Created\r\nContent-Length: 6\r\nX-Upload: done\r\n\r\nstored"));
        RecordingListener listener = new RecordingListener();
        try (resumable; WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).listener(listener)
                .route("/", resumable.backend()).build();
                StandardError.Capture log = StandardError.capture()) {
            proxying.start();
            RawHttp.Response hints;
            RawHttp.Response interim;
            RawHttp.Response response;
            try (RawHttp client = RawHttp.connect(proxying)) {
                client.send(Request.plain("PUT", "/uploads", RawHttp.host(proxying))
                        .add("Content-Length", "5").add("Expect", "100-continue"));
                hints = client.readResponse();
                interim = client.readResponse();
                client.send("hello");
                response = client.readResponse();
            }
            assertThat(hints.status()).as("%s", hints).isEqualTo(103);
            assertThat(hints.header("Link")).isEqualTo("</style.css>; rel=preload");
            assertThat(interim.status()).as("%s", interim).isEqualTo(100);
            assertThat(response.status()).as("%s", response).isEqualTo(201);
            assertThat(response.header("X-Upload")).isEqualTo("done");
            assertThat(response.header("Location")).as("the dropped 104's").isNull();
            assertThat(response.bodyText()).isEqualTo("stored");
            assertThat(resumable.nextRequest().header("Expect")).isEqualTo("100-continue");
            assertThat(resumable.nextBody()).isEqualTo("hello");
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text()).containsPattern(
                    " dev\\.wsproxy\\.access - sid=- .* method=PUT status=201 reason=-\n"));
            assertThat(listener.all(RecordingListener.Rejected.class)).isEmpty();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-Debug: %s\r\nContent-Length: 2\r\n\r\nok"})
    void answers502ToAnUploadThatExpects100ContinueWhoseBackendAnswersWhatItRefuses(String answer) throws Exception {
        // A backend that answers without its 100 has its response replayed by Jetty's continue handler once complete,
        // so the abort of a 101 to a plain request, or of a head larger than the client's connection writes, failed
        // the request only, which read as an early answer: the client got 200 (for the 101) or the backend's status
        // and body without its headers, and the access line said reason=-.
        RawBackend refused = RawBackend.answering(RawBackend.raw(String.format(answer, "d".repeat(20_000))));
        RecordingListener listener = new RecordingListener();
        try (refused; WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).listener(listener)
                .route("/", refused.backend()).build();
                StandardError.Capture log = StandardError.capture()) {
            proxying.start();
            RawHttp.Response response;
            try (RawHttp client = RawHttp.connect(proxying)) {
                response = client.exchange(Request.plain("PUT", "/files/a", RawHttp.host(proxying))
                        .add("Content-Length", "5").add("Expect", "100-continue"));
            }
            assertThat(response.status()).as("%s", response).isEqualTo(502);
            assertThat(response.header("X-Debug")).isNull();
            assertThat(response.header("Upgrade")).isNull();
            assertThat(response.bodyText()).isNotEqualTo("ok");
            assertThat(refused.nextRequest().header("Expect")).isEqualTo("100-continue");
            assertThat(refused.nextEnd(5)).as("the backend connection").isEqualTo("eof");
            assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                    .containsExactly(502);
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text()).containsPattern(
                    " dev\\.wsproxy\\.access - sid=- .* method=PUT status=502 reason=backend_failed\n"));
        }
    }

    /**
     * Sends a {@code PUT} of {@code body} with {@code Expect: 100-continue}, the body only after the proxy's
     * {@code 100}, and returns the final response.
     */
    private static RawHttp.Response upload(WebSocketProxy proxying, String target, String body) throws Exception {
        return upload(RawHttp.connect(proxying), RawHttp.host(proxying), target, body);
    }

    private static RawHttp.Response upload(RawHttp client, String host, String target, String body) throws Exception {
        return upload(client, host, target, body, "text/plain");
    }

    /** Like {@link #upload(WebSocketProxy, String, String)}, with {@code contentType} or none when {@code null}. */
    private static RawHttp.Response upload(RawHttp client, String host, String target, String body,
            String contentType) throws Exception {
        try (client) {
            Request request = Request.plain("PUT", target, host);
            if (contentType != null) {
                request.add("Content-Type", contentType);
            }
            client.send(request.add("Content-Length", String.valueOf(body.length())).add("Expect", "100-continue"));
            RawHttp.Response interim = client.readResponse();
            assertThat(interim.status()).as("%s", interim).isEqualTo(100);
            client.send(body);
            return client.readResponse();
        }
    }

    @Test
    void answersAMalformedRequestBodyWith400NotAsTheBackendsFailure() throws Exception {
        // The client's chunked body breaks off in a bad chunk size: ProxyHandler's forward fails, which read as the
        // backend's failure, 502 reason=backend_failed, while the backend was fine and the request was the client's.
        uploadingInChunks((proxying, storing, listener, log) -> {
            RawHttp.Response response;
            try (RawHttp client = startUpload(proxying)) {
                client.send("5\r\nhello\r\nzz\r\n");
                response = client.readResponse();
            }
            assertThat(response.status()).as("%s", response).isEqualTo(400);
            assertThat(listener.all(RecordingListener.Rejected.class)).extracting(RecordingListener.Rejected::status)
                    .containsExactly(400);
            assertThat(proxying.backendStatus("/").get(0).recentFailures()).as("not the backend's failure").isZero();
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text()).containsPattern(
                    " dev\\.wsproxy\\.access - sid=- .* method=POST status=400 reason=bad_request\n"));
        });
    }

    @Test
    void logsAClientThatLeavesDuringItsRequestBodyAsGone() throws Exception {
        // The client resets its connection in the middle of its body: the forward failed as the backend's, 502
        // reason=backend_failed in the log, and a 502 reported to listeners that no one received.
        uploadingInChunks((proxying, storing, listener, log) -> {
            try (RawHttp client = startUpload(proxying)) {
                client.send("5\r\nhello\r\n");
                assertThat(storing.nextRequest().head()).as("the forward began").startsWith("POST /upload ");
                client.reset();
            }
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text()).containsPattern(
                    " dev\\.wsproxy\\.access - sid=- .* method=POST status=499 reason=client_left\n"));
            assertThat(listener.all(RecordingListener.Rejected.class)).as("no refusal that no one received").isEmpty();
            assertThat(proxying.backendStatus("/").get(0).recentFailures()).as("not the backend's failure").isZero();
        });
    }

    @Test
    void refusesABodyLongerThanItsContentLengthBehindALenientConnector() throws Exception {
        // A user's connector that admits Transfer-Encoding with Content-Length (RFC2616_LEGACY) reads the body
        // chunked and leaves the length: the backend was sent "Content-Length: 3" and the 5 bytes of the body, whose
        // last two it reads as the start of the next request on that connection (a CL.TE desync).
        RawBackend plain = RawBackend.answering(RawBackend.raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        WebSocketProxy mounted = ProxyBuilder.create().route("/", plain.backend()).build();
        Server server = new Server();
        HttpConfiguration lenient = new HttpConfiguration();
        lenient.setHttpCompliance(HttpCompliance.RFC2616_LEGACY);
        ServerConnector connector = new ServerConnector(server, new HttpConnectionFactory(lenient));
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(mounted.handler());
        try (plain) {
            server.start();
            RawHttp.Response response;
            try (RawHttp client = RawHttp.over(new Socket("127.0.0.1", connector.getLocalPort()))) {
                response = client.exchange(Request.plain("POST", "/upload", "127.0.0.1:" + connector.getLocalPort())
                        .add("Content-Length", "3").add("Transfer-Encoding", "chunked")
                        .body("5\r\nhello\r\n0\r\n\r\n"));
            }
            assertThat(response.status()).as("%s", response).isEqualTo(400);
            assertThat(plain.requests).as("requests the backend got").isEmpty();
        } finally {
            server.stop();
        }
    }

    @Test
    void answers408ToAClientWhoseBodyStallsPastTheConnectorsIdleTimeout() throws Exception {
        // Jetty fails the read of a body that stopped coming with a timeout, which was taken for a malformed body:
        // 400, "malformed request body" to listeners, bad_request in the log. nginx answers 408 (client_body_timeout).
        RawBackend waiting = RawBackend.answering(RawBackend.silent());
        RecordingListener listener = new RecordingListener();
        WebSocketProxy mounted = ProxyBuilder.create().listener(listener).route("/", waiting.backend()).build();
        Server server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        connector.setIdleTimeout(300);
        server.addConnector(connector);
        server.setHandler(mounted.handler());
        try (StandardError.Capture log = StandardError.capture()) {
            server.start();
            assertStalledUploadGets408(RawHttp.over(new Socket("127.0.0.1", connector.getLocalPort())),
                    "127.0.0.1:" + connector.getLocalPort(), listener, log);
            assertThat(mounted.backendStatus("/").get(0).recentFailures()).as("not the backend's failure").isZero();
        } finally {
            server.stop();
            waiting.close();
        }
    }

    @Test
    void answers408ToAClientWhoseBodyStallsPastTheRoutesShorterIdleTimeout() throws Exception {
        // The route's idle timeout, on the backend request, came first: 504 backend_timeout, "backend did not answer
        // in time", for a backend that was waiting for the rest of the client's body.
        RawBackend waiting = RawBackend.answering(RawBackend.silent());
        RecordingListener listener = new RecordingListener();
        try (waiting; WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).listener(listener)
                .route("/", r -> r.backends(waiting.backend())
                        .timeoutPolicy(TimeoutPolicy.idle(Duration.ofMillis(300))))
                .build();
                StandardError.Capture log = StandardError.capture()) {
            proxying.start();
            assertStalledUploadGets408(RawHttp.connect(proxying), RawHttp.host(proxying), listener, log);
        }
    }

    @Test
    void reportsABackendsFailureToListenersInAtMost300Characters() throws Exception {
        // Jetty's client names the whole connection in the message of a response it cannot parse: the reason was cut
        // to 300 characters and "..." added after them, 303, past the 300 ProxyListener.onHandshakeRejected promises.
        RawBackend garbage = RawBackend.answeringThenClosing(RawBackend.raw("garbage\r\n\r\n"));
        RecordingListener listener = new RecordingListener();
        try (garbage; WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).listener(listener)
                .route("/", garbage.backend()).build()) {
            proxying.start();
            try (RawHttp client = RawHttp.connect(proxying)) {
                RawHttp.Response response = client.exchange(Request.plain("GET", "/x", RawHttp.host(proxying)));
                assertThat(response.status()).as("%s", response).isEqualTo(502);
            }
            RecordingListener.Rejected rejected = listener.first(RecordingListener.Rejected.class);
            assertThat(rejected.status()).isEqualTo(502);
            assertThat(rejected.reason()).startsWith("backend failed: ").endsWith("...").hasSizeLessThanOrEqualTo(300);
        }
    }

    /**
     * Sends {@code client} an upload of 3 of its 10 bytes, then nothing, and checks that it gets {@code 408}, reported
     * to {@code listener} and logged as {@code body_timeout}; closes {@code client}.
     */
    private static void assertStalledUploadGets408(RawHttp client, String host, RecordingListener listener,
            StandardError.Capture log) throws Exception {
        RawHttp.Response response;
        try (client) {
            client.send(Request.plain("POST", "/upload", host).add("Content-Length", "10").body("abc"));
            response = client.readResponse();
        }
        assertThat(response.status()).as("%s", response).isEqualTo(408);
        assertThat(listener.all(RecordingListener.Rejected.class)).containsExactly(
                new RecordingListener.Rejected("/", "/upload", 408, "request body timed out"));
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(log.text()).containsPattern(
                " dev\\.wsproxy\\.access - sid=- .* method=POST status=408 reason=body_timeout\n"));
    }

    /** A test of a chunked upload through a proxy with a listener, to a backend that reads bodies. */
    @FunctionalInterface
    private interface ChunkedUpload {
        void run(WebSocketProxy proxying, RawBackend storing, RecordingListener listener, StandardError.Capture log)
                throws Exception;
    }

    private static void uploadingInChunks(ChunkedUpload test) throws Exception {
        RawBackend storing = RawBackend.readingBodies(
                RawBackend.raw("HTTP/1.1 201 Created\r\nContent-Length: 6\r\nConnection: close\r\n\r\nstored"));
        RecordingListener listener = new RecordingListener();
        try (storing; WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).listener(listener)
                .route("/", storing.backend()).build();
                StandardError.Capture log = StandardError.capture()) {
            proxying.start();
            test.run(proxying, storing, listener, log);
        }
    }

    /** Sends the head of a chunked POST; the test sends the chunks. */
    private static RawHttp startUpload(WebSocketProxy proxying) throws Exception {
        RawHttp client = RawHttp.connect(proxying);
        client.send(Request.plain("POST", "/upload", RawHttp.host(proxying)).add("Transfer-Encoding", "chunked"));
        return client;
    }

    @Test
    void addsNoContentTypeToABodyThatCameWithoutOne() throws Exception {
        // Jetty's client would send application/octet-stream; nginx adds nothing, and the backend may sniff the body.
        RawBackend storing = RawBackend.readingBodies(
                RawBackend.raw("HTTP/1.1 201 Created\r\nContent-Length: 6\r\nConnection: close\r\n\r\nstored"));
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", storing.backend())
                .build()) {
            proxying.start();
            try (RawHttp client = RawHttp.connect(proxying)) {
                RawHttp.Response posted = client.exchange(Request.plain("POST", "/form", RawHttp.host(proxying))
                        .add("Content-Length", "5").body("hello"));
                assertThat(posted.status()).as("%s", posted).isEqualTo(201);
            }
            RawBackend.Request post = storing.nextRequest();
            assertThat(post.header("Content-Type")).as("%s", post.head()).isNull();
            assertThat(storing.nextBody()).isEqualTo("hello");

            RawHttp.Response uploaded = upload(RawHttp.connect(proxying), RawHttp.host(proxying), "/files/a", "hello",
                    null);
            assertThat(uploaded.status()).as("%s", uploaded).isEqualTo(201);
            RawBackend.Request put = storing.nextRequest();
            assertThat(put.header("Content-Type")).as("%s", put.head()).isNull();
            assertThat(storing.nextBody()).isEqualTo("hello");

            assertThat(upload(proxying, "/files/b", "typed").status()).isEqualTo(201);
            assertThat(storing.nextRequest().header("Content-Type")).as("the client's own").isEqualTo("text/plain");
        } finally {
            storing.close();
        }
    }

    @Test
    void forwardsAsBeforeAfterTheServerItIsMountedInRestarts() throws Exception {
        // A stopped HttpClient forgets its protocol handlers and decoders, and starts again with Jetty's defaults:
        // following a 401 as a challenge, a Continue handler that never sends the held body, gzip decoding.
        RawBackend answering = RawBackend.readingBodies(request -> request.requestLine().startsWith("PUT")
                ? "HTTP/1.1 201 Created\r\nContent-Length: 6\r\nConnection: close\r\n\r\nstored"
                : "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n"
                + "\r\ndenied");
        WebSocketProxy mounted = ProxyBuilder.create()
                .route("/", r -> r.backends(answering.backend()).timeoutPolicy(TimeoutPolicy.idle(Duration.ofSeconds(2))))
                .build();
        Server server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(mounted.handler());
        try {
            server.start();
            server.stop();
            server.start();
            String host = "127.0.0.1:" + connector.getLocalPort();
            try (RawHttp client = RawHttp.over(new Socket("127.0.0.1", connector.getLocalPort()))) {
                // Twice on one connection: a 401 taken for a challenge without one failed after its body was written.
                for (int i = 0; i < 2; i++) {
                    RawHttp.Response refused = client.exchange(Request.plain("GET", "/secret", host));

                    assertThat(refused.status()).as("%s", refused).isEqualTo(401);
                    assertThat(refused.bodyText()).isEqualTo("denied");
                }
            }
            RawBackend.Request seen = answering.nextRequest();
            assertThat(seen.header("Accept-Encoding")).as("%s", seen.head()).isNull();
            RawHttp.Response stored = upload(RawHttp.over(new Socket("127.0.0.1", connector.getLocalPort())), host,
                    "/files/a", "hello");
            assertThat(stored.status()).as("%s", stored).isEqualTo(201);
            assertThat(stored.bodyText()).isEqualTo("stored");
        } finally {
            server.stop();
            answering.close();
        }
    }

    @Test
    void passesPlainHttpToTheNextHandlerOnANextHandlerRoute() throws Exception {
        RawHttp.Response response = get("/p/page?x=1");

        assertThat(response.status()).isEqualTo(200);
        assertThat(response.bodyText()).isEqualTo("next:/p/page?x=1");
        assertThat(backend.httpConnections).hasValue(0);
    }

    @Test
    void stillProxiesWebSocketUpgradesOnANextHandlerRoute() throws Exception {
        try (RawHttp client = RawHttp.connect(proxy)) {
            RawHttp.Response response = client.exchange(Request.upgrade("/p/chat", RawHttp.host(proxy)));

            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        assertThat(backend.nextUpgrade().pathQuery()).isEqualTo("/p/chat");
        assertThat(next.requests).isEmpty();
    }

    @Test
    void refusesAMalformedUpgradeOnANextHandlerRouteInsteadOfPassingItOn() throws Exception {
        RawHttp.Response response = get(Request.upgrade("/p/chat", RawHttp.host(proxy))
                .set("Sec-WebSocket-Version", "8"));

        assertThat(response.status()).isEqualTo(426);
        assertThat(next.requests).isEmpty();
        assertThat(backend.httpConnections).hasValue(0);
    }

    /**
     * An upgrade offer for another protocol (the JDK's HTTP client offers {@code h2c} by default) is never honoured:
     * the proxy refuses it or serves it as plain HTTP, but the backend never sees the offer (which would let it switch
     * the connection to a protocol the proxy cannot inspect: h2c smuggling) and the client never gets a {@code 101}.
     */
    @ParameterizedTest(name = "Upgrade: {0}")
    @ValueSource(strings = {"h2c", "websocket2", "TLS/1.2"})
    void neverTunnelsAnUpgradeOfferThatIsNotWebSocket(String protocol) throws Exception {
        RawHttp.Response response = get(Request.plain("GET", "/raw/page", RawHttp.host(proxy))
                .add("Connection", "Upgrade, HTTP2-Settings")
                .add("Upgrade", protocol)
                .add("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"));

        assertThat(response.status()).as("%s", response).isIn(200, 400);
        assertThat(response.header("Upgrade")).isNull();
        if (response.status() == 200) {
            assertThat(response.bodyText()).isEqualTo("raw-body");
            RawBackend.Request seen = raw.nextRequest();
            assertThat(seen.requestLine()).isEqualTo("GET /raw/page HTTP/1.1");
            assertThat(seen.header("Upgrade")).as("Upgrade at the backend").isNull();
            assertThat(seen.header("HTTP2-Settings")).as("HTTP2-Settings at the backend").isNull();
            String connection = seen.header("Connection");
            if (connection != null) {
                assertThat(connection).doesNotContainIgnoringCase("upgrade").doesNotContainIgnoringCase("http2");
            }
        } else {
            assertThat(raw.connections).hasValue(0);
        }
    }

    @Test
    void proxiesAJdkHttpClientRequestThatOffersH2c() throws Exception {
        HttpResponse<String> response = HttpClient.newBuilder().version(HttpClient.Version.HTTP_2).build()
                .send(HttpRequest.newBuilder(URI.create(proxy.uri() + "ws/plain?jdk=1")).build(),
                        HttpResponse.BodyHandlers.ofString());

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.body()).startsWith("plain:/ws/plain?jdk=1 ");
    }

    @Test
    void passesRequestsOutsideEveryRouteToTheNextHandler() throws Exception {
        RawHttp.Response page = get("/index.html");
        RawHttp.Response routeWithoutSlash = get("/ws");

        assertThat(page.bodyText()).isEqualTo("next:/index.html");
        assertThat(routeWithoutSlash.bodyText()).isEqualTo("next:/ws");
        assertThat(backend.httpConnections).hasValue(0);
    }

    @Test
    void passesUpgradesOutsideEveryRouteToTheNextHandler() throws Exception {
        RawHttp.Response response = get(Request.upgrade("/elsewhere/chat", RawHttp.host(proxy)));

        assertThat(response.status()).isEqualTo(200);
        assertThat(response.bodyText()).isEqualTo("next:/elsewhere/chat");
        assertThat(backend.httpConnections).hasValue(0);
    }

    @Test
    void answers404WithAnAccessLineOutsideEveryRouteWithoutANextHandler() throws Exception {
        // The 404s had no access line: a scan of paths outside the routes left nothing in the log.
        try (WebSocketProxy bare = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/ws/", backend.backend())
                .route("/p/", r -> r.backends(backend.backend()).plainHttp(PlainHttp.NEXT_HANDLER)).build();
                StandardError.Capture log = StandardError.capture()) {
            bare.start();
            try (RawHttp client = RawHttp.connect(bare)) {
                RawHttp.Response response = client.exchange(Request.plain("GET", "/index.html", RawHttp.host(bare)));

                assertThat(response.status()).isEqualTo(404);
            }
            try (RawHttp client = RawHttp.connect(bare)) {
                RawHttp.Response response = client.exchange(Request.upgrade("/other/chat", RawHttp.host(bare)));

                assertThat(response.status()).isEqualTo(404);
            }
            try (RawHttp client = RawHttp.connect(bare)) {
                // A route that passes plain HTTP on, with nothing to pass it to.
                RawHttp.Response response = client.exchange(Request.plain("PUT", "/p/page", RawHttp.host(bare)));

                assertThat(response.status()).isEqualTo(404);
            }
            assertThat(accessLines(log)).containsExactly(
                    "sid=- client=127.0.0.1 route=- backend=- duration_ms=* method=GET status=404 reason=no_route",
                    "sid=- client=127.0.0.1 route=- backend=- duration_ms=* method=GET status=404 reason=no_route",
                    "sid=- client=127.0.0.1 route=- backend=- duration_ms=* method=PUT status=404 reason=no_route");
            Clients.assertNoLeaks(bare, null, backend);
        }
        assertThat(backend.httpConnections).hasValue(0);
    }

    @Test
    void leavesTheNextHandlersOwnErrorsUnloggedAndLogsWhatItDoesNotTake() throws Exception {
        // The next handler's requests are its own to log, its error pages too (a page it does not have, a request it
        // refuses as Jetty's parser would); one it does not take gets Jetty's 404, which no handler answered: that one
        // has its access line.
        Handler failing = new Handler.Abstract() {
            @Override
            public boolean handle(org.eclipse.jetty.server.Request request, Response response, Callback callback) {
                switch (request.getHttpURI().getPath()) {
                    case "/declined" -> {
                        return false;
                    }
                    case "/refused" -> throw new HttpException.RuntimeException(400, "bad form");
                    default -> {
                        Response.writeError(request, response, callback, 404);
                        return true;
                    }
                }
            }
        };
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/ws/", backend.backend()).nextHandler(failing).build();
                StandardError.Capture log = StandardError.capture()) {
            proxying.start();
            try (RawHttp client = RawHttp.connect(proxying)) {
                assertThat(client.exchange(Request.plain("GET", "/missing", RawHttp.host(proxying))).status())
                        .isEqualTo(404);
            }
            try (RawHttp client = RawHttp.connect(proxying)) {
                assertThat(client.exchange(Request.plain("GET", "/refused", RawHttp.host(proxying))).status())
                        .isEqualTo(400);
            }
            try (RawHttp client = RawHttp.connect(proxying)) {
                assertThat(client.exchange(Request.plain("GET", "/declined", RawHttp.host(proxying))).status())
                        .isEqualTo(404);
            }
            assertThat(accessLines(log)).containsExactly(
                    "sid=- client=127.0.0.1 route=- backend=- duration_ms=* method=GET status=404 reason=no_route");
        }
        assertThat(backend.httpConnections).hasValue(0);
    }

    /** The access lines written so far, each {@code duration_ms} as {@code *}. */
    private static List<String> accessLines(StandardError.Capture log) {
        String marker = " dev.wsproxy.access - ";
        return log.text().lines().filter(line -> line.contains(marker))
                .map(line -> line.substring(line.indexOf(marker) + marker.length())
                        .replaceFirst("duration_ms=\\d+", "duration_ms=*"))
                .toList();
    }

    @Test
    void takesABackendThatRefusesPlainHttpDownAndFailsOverToAnother() throws Exception {
        List<String> changes = new CopyOnWriteArrayList<>();
        RecordingListener recorded = new RecordingListener();
        Backend dead = Backend.of("ws://127.0.0.1:" + closedPort);
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", dead, backend.backend())
                .backendSelector(BackendSelector.roundRobin())
                .passiveHealth(1, Duration.ofSeconds(10))
                .listener(stateChanges(changes))
                .listener(recorded)
                .build()) {
            proxying.start();
            for (int i = 0; i < 6; i++) {
                try (RawHttp client = RawHttp.connect(proxying)) {
                    RawHttp.Response response = client.exchange(Request.plain("GET", "/page?i=" + i,
                            RawHttp.host(proxying)));

                    assertThat(response.status()).as("request %d: %s", i, response).isEqualTo(200);
                    assertThat(response.bodyText()).startsWith("plain:/page?i=" + i + " ");
                }
            }
            BackendStatus deadStatus = status(proxying, dead);
            assertThat(deadStatus.state()).isEqualTo(BackendStatus.State.DOWN);
            assertThat(deadStatus.recentFailures()).isEqualTo(1);
            assertThat(status(proxying, backend.backend()).state()).isEqualTo(BackendStatus.State.UP);
            assertThat(changes).containsExactly(dead + " UP->DOWN");
            // Reported as a failed backend handshake is; failed over, so no request was rejected.
            assertThat(recorded.all(RecordingListener.ConnectFailed.class)).singleElement()
                    .satisfies(failed -> assertThat(failed.backend()).isEqualTo(dead));
            assertThat(recorded.all(RecordingListener.Rejected.class)).isEmpty();
        }
    }

    @Test
    void sendsOnePlainRequestAtATimeToABackendBackFromPassiveHealthsDown() throws Exception {
        // As for upgrades (BalancingTest): when the window passed, every request went to a backend that does not
        // answer SYNs until a new failure was counted, each waiting for the connect timeout before failing over.
        RecordingListener recorded = new RecordingListener();
        Duration connectTimeout = Duration.ofSeconds(2);
        try (UnacceptedPort unaccepted = new UnacceptedPort();
                WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                        .route("/", r -> r.backends(unaccepted.backend(), backend.backend())
                                .backendSelector(context -> context.candidates().get(0).backend())
                                .timeoutPolicy(TimeoutPolicy.custom().connect(connectTimeout).build())
                                .passiveHealth(1, Duration.ofSeconds(2)))
                        .listener(recorded)
                        .build()) {
            proxying.start();
            assertThat(get(proxying, "/first").status()).isEqualTo(200); // the unaccepted one first, failed over
            BackendStatus blackHole = status(proxying, unaccepted.backend());
            assertThat(blackHole.state()).isEqualTo(BackendStatus.State.DOWN);
            await().atMost(Duration.ofSeconds(10)).until(() -> blackHole.state() == BackendStatus.State.UP);

            int requests = 4;
            List<CompletableFuture<Integer>> answered = new ArrayList<>();
            for (int i = 0; i < requests; i++) {
                String target = "/page?i=" + i;
                answered.add(CompletableFuture.supplyAsync(() -> {
                    try {
                        return get(proxying, target).status();
                    } catch (Exception e) {
                        throw new java.util.concurrent.CompletionException(e);
                    }
                }));
            }

            // All but the trial's reach the live backend while the trial still waits for its connection.
            await().atMost(connectTimeout.minusMillis(500))
                    .until(() -> answered.stream().filter(CompletableFuture::isDone).count() == requests - 1);
            assertThat(recorded.all(RecordingListener.ConnectFailed.class)).as("the first failure only").hasSize(1);
            for (CompletableFuture<Integer> status : answered) {
                assertThat(status.get(10, TimeUnit.SECONDS)).isEqualTo(200);
            }
            assertThat(recorded.all(RecordingListener.ConnectFailed.class)).as("and the trial's").hasSize(2);
            assertThat(blackHole.state()).as("down again for a window").isEqualTo(BackendStatus.State.DOWN);
        }
    }

    private static RawHttp.Response get(WebSocketProxy proxying, String target) throws Exception {
        try (RawHttp client = RawHttp.connect(proxying)) {
            return client.exchange(Request.plain("GET", target, RawHttp.host(proxying)));
        }
    }

    @Test
    void takesABackendWhoseTlsHandshakeFailsDownAndFailsOverToAnother() throws Exception {
        // Jetty's client sends the request as soon as TCP is up; TLS completes on that first write, so the handshake
        // fails after the request began, but nothing of it reached the backend.
        List<String> changes = new CopyOnWriteArrayList<>();
        TestBackend untrusted = new TestBackend("untrusted", TestCertificates.UNTRUSTED.server());
        TestBackend trusted = new TestBackend("trusted", TestCertificates.LOCALHOST.server());
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", untrusted.backend(), trusted.backend())
                .backendTls(BackendTls.trustStore(TestCertificates.LOCALHOST.pem()))
                .backendSelector(BackendSelector.roundRobin())
                .passiveHealth(1, Duration.ofSeconds(10))
                .listener(stateChanges(changes))
                .build()) {
            proxying.start();
            for (int i = 0; i < 4; i++) {
                try (RawHttp client = RawHttp.connect(proxying)) {
                    RawHttp.Response response = client.exchange(Request.plain("GET", "/page?i=" + i,
                            RawHttp.host(proxying)));

                    assertThat(response.status()).as("request %d: %s", i, response).isEqualTo(200);
                }
            }
            assertThat(status(proxying, untrusted.backend()).state()).isEqualTo(BackendStatus.State.DOWN);
            assertThat(changes).containsExactly(untrusted.backend() + " UP->DOWN");
        } finally {
            untrusted.close();
            trusted.close();
        }
    }

    @Test
    void answers502ForARefusedPlainRequestWithoutFailoverAndTakesTheBackendDown() throws Exception {
        Backend dead = Backend.of("ws://127.0.0.1:" + closedPort);
        RecordingListener recorded = new RecordingListener();
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", dead, backend.backend())
                .backendSelector(BackendSelector.roundRobin())
                .passiveHealth(1, Duration.ofSeconds(10))
                .failover(1, Duration.ofSeconds(10))
                .listener(recorded)
                .build()) {
            proxying.start();
            List<Integer> statuses = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                try (RawHttp client = RawHttp.connect(proxying)) {
                    statuses.add(client.exchange(Request.plain("GET", "/page", RawHttp.host(proxying))).status());
                }
            }

            assertThat(statuses).as("one attempt each: the refused one's 502, then the live backend only")
                    .containsExactly(502, 200, 200, 200, 200, 200);
            assertThat(status(proxying, dead).state()).isEqualTo(BackendStatus.State.DOWN);
            // Reported as a refused handshake is: the backend's failure, then the client's 502.
            assertThat(recorded.all(RecordingListener.ConnectFailed.class)).singleElement()
                    .satisfies(failed -> assertThat(failed.backend()).isEqualTo(dead));
            assertThat(recorded.all(RecordingListener.Rejected.class)).singleElement().satisfies(rejected -> {
                assertThat(rejected.status()).isEqualTo(502);
                assertThat(rejected.pathQuery()).isEqualTo("/page");
            });
        }
    }

    @Test
    void failsOverAnUploadWhoseBackendRefusedTheConnectionWithItsBody() throws Exception {
        // Nothing of the request reached the refused backend and nothing of its body was read from the client.
        RawBackend storing = RawBackend.readingBodies(
                RawBackend.raw("HTTP/1.1 201 Created\r\nContent-Length: 6\r\nConnection: close\r\n\r\nstored"));
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", Backend.of("ws://127.0.0.1:" + closedPort), storing.backend())
                .backendSelector(BackendSelector.roundRobin())
                .passiveHealth(0, Duration.ofSeconds(10))
                .build()) {
            proxying.start();
            List<String> sent = new ArrayList<>();
            for (int i = 0; i < 2; i++) {
                String posted = "posted-" + i;
                try (RawHttp client = RawHttp.connect(proxying)) {
                    RawHttp.Response response = client.exchange(Request.plain("POST", "/form", RawHttp.host(proxying))
                            .add("Content-Type", "text/plain").add("Content-Length", String.valueOf(posted.length()))
                            .body(posted));

                    assertThat(response.status()).as("POST %d: %s", i, response).isEqualTo(201);
                }
                String uploaded = "uploaded-" + i;
                RawHttp.Response response = upload(proxying, "/files/" + i, uploaded);
                assertThat(response.status()).as("PUT %d: %s", i, response).isEqualTo(201);
                sent.add(posted);
                sent.add(uploaded);
            }

            List<String> received = new ArrayList<>();
            for (int i = 0; i < sent.size(); i++) {
                received.add(storing.nextBody());
            }
            assertThat(received).containsExactlyInAnyOrderElementsOf(sent);
        } finally {
            storing.close();
        }
    }

    private static ProxyListener stateChanges(List<String> changes) {
        return new ProxyListener() {
            @Override
            public void onBackendStateChanged(String route, BackendStatus backend, BackendStatus.State previous) {
                changes.add(backend.backend() + " " + previous + "->" + backend.state());
            }
        };
    }

    @Test
    void turnsAwayADrainedBackendAPlainRequestWasGivenAndFailsOverToAnother() throws Exception {
        // A selector may pick from backends(), which lists drained backends: as for an upgrade, such a pick is turned
        // away and the request goes to the next candidate.
        TestBackend other = new TestBackend("b2");
        java.util.concurrent.atomic.AtomicInteger picks = new java.util.concurrent.atomic.AtomicInteger();
        BackendSelector firstListedThenCandidates = context -> picks.getAndIncrement() == 0
                ? context.backends().get(0)
                : context.candidates().isEmpty() ? null : context.candidates().get(0).backend();
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", backend.backend(), other.backend())
                .backendSelector(firstListedThenCandidates)
                .build()) {
            proxying.start();
            proxying.drain(backend.backend(), Duration.ZERO);
            int drainedConnections = backend.httpConnections.get();
            try (RawHttp client = RawHttp.connect(proxying)) {
                RawHttp.Response response = client.exchange(Request.plain("GET", "/page", RawHttp.host(proxying)));

                assertThat(response.status()).as("%s", response).isEqualTo(200);
            }
            assertThat(picks).as("the drained pick, then the other backend").hasValue(2);
            assertThat(backend.httpConnections).as("nothing reached the drained backend")
                    .hasValue(drainedConnections);
            assertThat(other.httpConnections).hasValue(1);
        } finally {
            other.close();
        }
    }

    @Test
    void aDrainedPickSpendsAnAttemptOfThePlainRequestAsOfAnUpgrade() throws Exception {
        // failover(1): the selector's one pick is the drained backend. Both paths share one failover budget, in which
        // a pick turned away is an attempt, so neither goes on to the other backend: 503 for both. (The plain path
        // did not count such a pick, and sent the request to the second backend anyway.)
        TestBackend other = new TestBackend("b2");
        Set<SelectionContext> seen = Collections.synchronizedSet(Collections.newSetFromMap(new IdentityHashMap<>()));
        BackendSelector drainedFirst = context -> seen.add(context)
                ? context.backends().get(0)
                : context.candidates().isEmpty() ? null : context.candidates().get(0).backend();
        try (WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", backend.backend(), other.backend())
                .backendSelector(drainedFirst)
                .failover(1, Duration.ofSeconds(10))
                .build()) {
            proxying.start();
            proxying.drain(backend.backend(), Duration.ZERO);
            int drainedConnections = backend.httpConnections.get();
            try (RawHttp client = RawHttp.connect(proxying)) {
                RawHttp.Response plain = client.exchange(Request.plain("GET", "/page", RawHttp.host(proxying)));

                assertThat(plain.status()).as("%s", plain).isEqualTo(503);
            }
            try (RawHttp client = RawHttp.connect(proxying)) {
                RawHttp.Response upgrade = client.exchange(Request.upgrade("/chat", RawHttp.host(proxying)));

                assertThat(upgrade.status()).as("%s", upgrade).isEqualTo(503);
            }
            assertThat(backend.httpConnections).as("nothing reached the drained backend")
                    .hasValue(drainedConnections);
            assertThat(other.httpConnections).as("nor the other: the one attempt was spent").hasValue(0);
            assertThat(other.upgrades).isEmpty();
        } finally {
            other.close();
        }
    }

    private static BackendStatus status(WebSocketProxy proxying, Backend backend) {
        return proxying.backendStatus("/").stream().filter(s -> s.backend().equals(backend)).findFirst()
                .orElseThrow();
    }

    @Test
    void answers504WhenAPlainHttpBackendDoesNotAcceptWithinTheRoutesConnectTimeout() throws Exception {
        RecordingListener recorded = new RecordingListener();
        try (UnacceptedPort unaccepted = new UnacceptedPort();
                WebSocketProxy proxying = ProxyBuilder.create().listen("127.0.0.1", 0)
                        .route("/", r -> r.backends(unaccepted.backend())
                                .timeoutPolicy(TimeoutPolicy.custom().connect(Duration.ofMillis(500)).build()))
                        .listener(recorded)
                        .build()) {
            proxying.start();
            try (RawHttp client = RawHttp.connect(proxying)) {
                long start = System.nanoTime();
                RawHttp.Response response = client.exchange(Request.plain("GET", "/page", RawHttp.host(proxying)));
                Duration waited = Duration.ofNanos(System.nanoTime() - start);

                assertThat(waited).as("%s after %s", response, waited).isBetween(Duration.ofMillis(400),
                        Duration.ofSeconds(5));
                assertThat(response.status()).as("%s", response).isEqualTo(504);
            }
            assertThat(recorded.all(RecordingListener.ConnectFailed.class)).hasSize(1);
            assertThat(recorded.all(RecordingListener.Rejected.class)).singleElement()
                    .satisfies(rejected -> assertThat(rejected.status()).isEqualTo(504));
        }
    }

    @Test
    void answers502WithoutDetailWhenThePlainHttpBackendIsDown() throws Exception {
        RawHttp.Response response = get("/down/page");

        assertThat(response.status()).as("%s", response).isEqualTo(502);
        assertThat(response.bodyText()).doesNotContain("Exception").doesNotContain("java.")
                .doesNotContain(String.valueOf(closedPort));
    }
}
