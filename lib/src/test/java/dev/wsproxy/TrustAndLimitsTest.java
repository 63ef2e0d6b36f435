package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.params.provider.Arguments.arguments;

import java.io.IOException;
import java.net.InetAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

import dev.wsproxy.RawHttp.Request;
import dev.wsproxy.internal.WebSocketProxyHandler;

/**
 * Trusted proxies decide who the client is; per-address and global session limits and the handshake rate refuse
 * before any backend connection, and give their slots back on every path; an IPv6 client counts with the other
 * addresses of its /64. Clients are played by sockets bound to different loopback addresses (127.0.0.1, 127.0.0.2,
 * ...), by {@code ::1} for IPv6, and by the {@code X-Forwarded-For} of a trusted proxy for other IPv6 addresses.
 */
class TrustAndLimitsTest {

    private final List<RawHttpExchange> exchanges = new ArrayList<>();
    private final List<RawHttp> ipv6Clients = new ArrayList<>();
    private TestBackend backend;
    private WebSocketProxy proxy;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
    }

    @AfterEach
    void stop() throws Exception {
        for (RawHttpExchange exchange : exchanges) {
            exchange.close();
        }
        for (RawHttp client : ipv6Clients) {
            client.close();
        }
        Clients.tearDown(proxy, null, backend);
    }

    private void start(ProxyBuilder builder) throws Exception {
        proxy = builder.listen("127.0.0.1", 0).route("/", backend.backend()).build();
        proxy.start();
    }

    private RawHttpExchange upgrade(String from, String path, String... headers) throws Exception {
        RawHttpExchange exchange = RawHttpExchange.upgradeFrom(from, proxy.uri().getPort(), path, headers);
        exchanges.add(exchange);
        return exchange;
    }

    @Test
    void takesTheClientFromTheForwardedForChainOfATrustedProxy() throws Exception {
        start(ProxyBuilder.create().trustedProxies("127.0.0.2/32", "10.0.0.0/8"));
        assertThat(upgrade("127.0.0.2", "/chat", "X-Forwarded-For: 198.51.100.7, 10.1.2.3",
                "X-Forwarded-Proto: https", "X-Forwarded-Host: chat.example.com").statusLine())
                .startsWith("HTTP/1.1 101");
        TestBackend.Upgrade seen = backend.nextUpgrade();
        assertThat(seen.header("X-Real-IP")).as("right-most untrusted hop").isEqualTo("198.51.100.7");
        assertThat(seen.header("X-Forwarded-For")).isEqualTo("198.51.100.7, 10.1.2.3, 127.0.0.2");
        assertThat(seen.header("X-Forwarded-Proto")).isEqualTo("https");
        assertThat(seen.header("X-Forwarded-Host")).isEqualTo("chat.example.com");
        await().until(() -> proxy.sessions().size() == 1);
        assertThat(proxy.sessions().get(0).clientAddress().getAddress().getHostAddress()).isEqualTo("198.51.100.7");
    }

    @ParameterizedTest(name = "from {0}: {1} -> {2}")
    @MethodSource("realIpCases")
    void takesTheClientFromTheRealIpOfATrustedProxyThatSendsNoForwardedFor(String from, List<String> headers,
            String client, String forwardedFor) throws Exception {
        start(ProxyBuilder.create().trustedProxies("127.0.0.2/32"));
        assertThat(upgrade(from, "/chat", headers.toArray(new String[0])).statusLine()).startsWith("HTTP/1.1 101");
        TestBackend.Upgrade upgraded = backend.nextUpgrade();
        assertThat(upgraded.header("X-Real-IP")).isEqualTo(client);
        // The chain names the client before the trusted proxy, as if that proxy had sent it in X-Forwarded-For.
        assertThat(upgraded.header("X-Forwarded-For")).isEqualTo(forwardedFor);
        await().until(() -> proxy.sessions().size() == 1);
        assertThat(proxy.sessions().get(0).clientAddress().getAddress()).isEqualTo(InetAddress.getByName(client));
    }

    static Stream<Arguments> realIpCases() {
        return Stream.of(
                // nginx's "proxy_set_header X-Real-IP $remote_addr" alone: read as an X-Forwarded-For hop is.
                arguments("127.0.0.2", List.of("X-Real-IP: 198.51.100.7"), "198.51.100.7", "198.51.100.7, 127.0.0.2"),
                arguments("127.0.0.2", List.of("X-Real-IP: 198.51.100.7:51234"), "198.51.100.7",
                        "198.51.100.7, 127.0.0.2"),
                arguments("127.0.0.2", List.of("X-Real-IP: [2001:db8::7]:443"), "2001:db8::7", "2001:db8::7, 127.0.0.2"),
                // X-Forwarded-For wins, even when it has no hop to read.
                arguments("127.0.0.2", List.of("X-Forwarded-For: 203.0.113.9", "X-Real-IP: 198.51.100.7"),
                        "203.0.113.9", "203.0.113.9, 127.0.0.2"),
                arguments("127.0.0.2", List.of("X-Forwarded-For: unknown", "X-Real-IP: 198.51.100.7"), "127.0.0.2",
                        "unknown, 127.0.0.2"),
                // No address: the trusted proxy is the client.
                arguments("127.0.0.2", List.of("X-Real-IP: unknown"), "127.0.0.2", "127.0.0.2"),
                arguments("127.0.0.2", List.of("X-Real-IP: 198.51.100.7, 203.0.113.9"), "127.0.0.2", "127.0.0.2"),
                // From a peer that is not trusted, ignored.
                arguments("127.0.0.1", List.of("X-Real-IP: 198.51.100.7"), "127.0.0.1", "127.0.0.1"));
    }

    @ParameterizedTest(name = "X-Forwarded-For: {0}")
    @CsvSource(delimiter = '|', quoteCharacter = '\'', value = {
            "\"junk, 198.51.100.7|198.51.100.7",
            "6.6.6.6, \", 198.51.100.7|198.51.100.7",
            "6.6.6.6, \"x, 198.51.100.7, 10.1.2.3|198.51.100.7",
            "\"198.51.100.7\"|198.51.100.7",
            "6.6.6.6, , 198.51.100.7,|198.51.100.7"})
    void takesTheHopAQuoteOfTheClientsCannotSwallowFromATrustedProxyOnUpgradesAndPlainHttp(String chain,
            String client) throws Exception {
        // A trusted proxy appends its peer to what the client sent: read as a list with quoted strings, the client's
        // unclosed quote took the proxy's hop in, and Jetty's parser threw: 400, no access line, no listener event.
        try (RawBackend plain = RawBackend.answering(RawBackend.raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))) {
            start(ProxyBuilder.create().trustedProxies("127.0.0.2/32", "10.0.0.0/8").route("/plain/", plain.backend()));

            assertThat(upgrade("127.0.0.2", "/chat", "X-Forwarded-For: " + chain).statusLine())
                    .startsWith("HTTP/1.1 101");
            TestBackend.Upgrade upgraded = backend.nextUpgrade();
            assertThat(upgraded.header("X-Real-IP")).isEqualTo(client);
            assertThat(upgraded.header("X-Forwarded-For")).as("the chain goes on as sent")
                    .isEqualTo(chain + ", 127.0.0.2");
            await().until(() -> proxy.sessions().size() == 1);
            assertThat(proxy.sessions().get(0).clientAddress().getAddress().getHostAddress()).isEqualTo(client);

            int port = proxy.uri().getPort();
            RawHttpExchange exchange = RawHttpExchange.send(port, "GET /plain/status HTTP/1.1\r\nHost: 127.0.0.1:"
                    + port + "\r\nX-Forwarded-For: " + chain + "\r\n\r\n", "127.0.0.2");
            exchanges.add(exchange);
            assertThat(exchange.statusLine()).startsWith("HTTP/1.1 200");
            assertThat(plain.nextRequest().header("X-Real-IP")).isEqualTo(client);
        }
    }

    @Test
    void takesTheFirstHostOfAForwardedHostListAndTheRequestsOwnForOneThatIsNoHost() throws Exception {
        // Taken whole, a list (or a value with a space) was no authority: sameOrigin answered 500 to every request.
        start(ProxyBuilder.create().trustedProxies("127.0.0.2/32").originValidator(OriginValidator.sameOrigin()));
        assertThat(upgrade("127.0.0.2", "/chat", "X-Forwarded-Host: chat.example.com, edge.internal:8080",
                "Origin: http://chat.example.com").statusLine()).startsWith("HTTP/1.1 101");
        assertThat(backend.nextUpgrade().header("X-Forwarded-Host")).isEqualTo("chat.example.com");
        // A docker-compose service name: a host, though java.net.URI takes it for none.
        assertThat(upgrade("127.0.0.2", "/chat", "X-Forwarded-Host: chat_app:8080", "Origin: http://chat_app:8080")
                .statusLine()).startsWith("HTTP/1.1 101");
        assertThat(backend.nextUpgrade().header("X-Forwarded-Host")).isEqualTo("chat_app:8080");

        String own = "127.0.0.1:" + proxy.uri().getPort();
        for (String noHost : List.of("chat example", "chat.example.com:99999", "user@chat.example.com",
                "chat.example.com/path", ", chat.example.com", "chat.example.com/", "chat.example.com:")) {
            assertThat(upgrade("127.0.0.2", "/chat", "X-Forwarded-Host: " + noHost, "Origin: http://" + own)
                    .statusLine()).as("X-Forwarded-Host: %s", noHost).startsWith("HTTP/1.1 101");
            assertThat(backend.nextUpgrade().header("X-Forwarded-Host")).as("X-Forwarded-Host: %s", noHost)
                    .isEqualTo(own);
        }
    }

    @Test
    void sendsOnlyTheForwardingHeadersItComputesFromATrustedProxyOnUpgradesAndPlainHttp() throws Exception {
        // Forwarded and the X-Forwarded-* the proxy does not compute passed as the trusted peer sent them, next to
        // the proxy's own: balancers that neither set nor strip them pass the client's on, and a backend that prefers
        // RFC 7239 read for=6.6.6.6 where the proxy had computed 198.51.100.7.
        String[] sent = {"X-Forwarded-For: 198.51.100.7", "X-Forwarded-Proto: https",
            "X-Forwarded-Host: chat.example.com", "X-Real-IP: 6.6.6.6",
            "Forwarded: for=6.6.6.6;proto=http;host=admin.internal", "X-Forwarded-Port: 8443",
            "X-Forwarded-Prefix: /admin", "X-Forwarded-Ssl: off", "X-Forwarded-Server: admin.internal",
            "X_Forwarded_Port: 8443", "X-Forwarded-Client-Cert: Hash=forged"};
        try (RawBackend plain = RawBackend.answering(RawBackend.raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))) {
            start(ProxyBuilder.create().trustedProxies("127.0.0.2/32").route("/plain/", plain.backend()));

            assertThat(upgrade("127.0.0.2", "/chat", sent).statusLine()).startsWith("HTTP/1.1 101");
            TestBackend.Upgrade upgraded = backend.nextUpgrade();
            assertThat(upgraded.headers()).doesNotContainKeys("forwarded", "x-forwarded-port", "x-forwarded-prefix",
                    "x-forwarded-ssl", "x-forwarded-server", "x_forwarded_port", "x-forwarded-client-cert");
            assertThat(upgraded.headers().get("x-forwarded-for")).containsExactly("198.51.100.7, 127.0.0.2");
            assertThat(upgraded.headers().get("x-real-ip")).containsExactly("198.51.100.7");
            assertThat(upgraded.headers().get("x-forwarded-proto")).containsExactly("https");
            assertThat(upgraded.headers().get("x-forwarded-host")).containsExactly("chat.example.com");

            int port = proxy.uri().getPort();
            RawHttpExchange exchange = RawHttpExchange.send(port, "GET /plain/status HTTP/1.1\r\nHost: 127.0.0.1:"
                    + port + "\r\n" + String.join("\r\n", sent) + "\r\n\r\n", "127.0.0.2");
            exchanges.add(exchange);
            assertThat(exchange.statusLine()).startsWith("HTTP/1.1 200");
            RawBackend.Request request = plain.nextRequest();
            for (String dropped : List.of("Forwarded", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Ssl",
                    "X-Forwarded-Server", "X_Forwarded_Port", "X-Forwarded-Client-Cert")) {
                assertThat(request.header(dropped)).as("%s in\n%s", dropped, request.head()).isNull();
            }
            assertThat(request.header("X-Forwarded-For")).isEqualTo("198.51.100.7, 127.0.0.2");
            assertThat(request.header("X-Real-IP")).isEqualTo("198.51.100.7");
            assertThat(request.header("X-Forwarded-Proto")).isEqualTo("https");
            assertThat(request.header("X-Forwarded-Host")).isEqualTo("chat.example.com");
        }
    }

    @Test
    void sendsEveryClientAddressHeaderThatArrivesWithTheClientItComputedOnUpgradesAndPlainHttp() throws Exception {
        // Backends read these before X-Forwarded-For (chi True-Client-IP, request-ip X-Client-IP, Rails Client-IP):
        // they passed as sent, so a client named itself any address, from any peer. The list forms go.
        String[] sent = {"X-Forwarded-For: 198.51.100.7", "True-Client-IP: 6.6.6.6", "CF-Connecting-IP: 6.6.6.6",
            "X-Client-IP: 6.6.6.6", "Client_IP: 6.6.6.6", "Fastly-Client-IP: 6.6.6.6", "X-Cluster-Client-IP: 6.6.6.6",
            "X-Forwarded: for=6.6.6.6", "Forwarded-For: 6.6.6.6", "X-Original-Forwarded-For: 6.6.6.6",
            "CF-Connecting-IPv6: 2001:db8::6", "CF-Pseudo-IPv4: 240.6.6.6"};
        List<String> replaced = List.of("True-Client-IP", "CF-Connecting-IP", "X-Client-IP", "Client-IP",
                "Fastly-Client-IP", "X-Cluster-Client-IP");
        List<String> dropped = List.of("X-Forwarded", "Forwarded-For", "X-Original-Forwarded-For",
                "CF-Connecting-IPv6", "CF-Pseudo-IPv4", "Client_IP", "X-AppEngine-User-IP");
        String ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"; // a connection each
        try (RawBackend plain = RawBackend.answering(RawBackend.raw(ok))) {
            start(ProxyBuilder.create().trustedProxies("127.0.0.2/32").route("/plain/", plain.backend()));
            int port = proxy.uri().getPort();
            for (String from : List.of("127.0.0.2", "127.0.0.1")) {
                String client = from.equals("127.0.0.2") ? "198.51.100.7" : "127.0.0.1";

                assertThat(upgrade(from, "/chat", sent).statusLine()).startsWith("HTTP/1.1 101");
                TestBackend.Upgrade upgraded = backend.nextUpgrade();
                for (String name : replaced) {
                    assertThat(upgraded.headers().get(name.toLowerCase(Locale.ROOT))).as("%s from %s", name, from)
                            .containsExactly(client);
                }
                assertThat(upgraded.headers()).doesNotContainKeys(
                        dropped.stream().map(name -> name.toLowerCase(Locale.ROOT)).toArray(String[]::new));

                RawHttpExchange exchange = RawHttpExchange.send(port, "GET /plain/status HTTP/1.1\r\nHost: 127.0.0.1:"
                        + port + "\r\n" + String.join("\r\n", sent) + "\r\n\r\n", from);
                exchanges.add(exchange);
                assertThat(exchange.statusLine()).startsWith("HTTP/1.1 200");
                RawBackend.Request request = plain.nextRequest();
                for (String name : replaced) {
                    assertThat(request.header(name)).as("%s from %s in\n%s", name, from, request.head())
                            .isEqualTo(client);
                }
                for (String name : dropped) {
                    assertThat(request.header(name)).as("%s from %s in\n%s", name, from, request.head()).isNull();
                }
            }
        }
    }

    @Test
    void ignoresTheForwardedForOfAPeerThatIsNotTrusted() throws Exception {
        start(ProxyBuilder.create().trustedProxies("127.0.0.2/32"));
        assertThat(upgrade("127.0.0.1", "/chat", "X-Forwarded-For: 198.51.100.7", "X-Real-IP: 198.51.100.7",
                "X-Forwarded-Proto: https").statusLine()).startsWith("HTTP/1.1 101");
        TestBackend.Upgrade seen = backend.nextUpgrade();
        assertThat(seen.header("X-Real-IP")).isEqualTo("127.0.0.1");
        assertThat(seen.header("X-Forwarded-For")).isEqualTo("127.0.0.1");
        assertThat(seen.header("X-Forwarded-Proto")).isEqualTo("http");
    }

    @Test
    void refusesTheSessionOverThePerAddressLimitWith429BeforeConnecting() throws Exception {
        start(ProxyBuilder.create().maxConnectionsPerIp(2));
        RawHttpExchange first = upgrade("127.0.0.1", "/a");
        assertThat(first.statusLine()).startsWith("HTTP/1.1 101");
        assertThat(upgrade("127.0.0.1", "/b").statusLine()).startsWith("HTTP/1.1 101");
        RawHttpExchange third = upgrade("127.0.0.1", "/c");
        assertThat(third.statusLine()).startsWith("HTTP/1.1 429");
        assertThat(third.head()).containsIgnoringCase("Retry-After: 1");
        assertThat(backend.httpConnections.get()).as("no backend connection for the refused one").isEqualTo(2);
        assertThat(upgrade("127.0.0.2", "/d").statusLine()).as("another address is not affected")
                .startsWith("HTTP/1.1 101");

        first.close(); // its session ends: the slot comes back
        await().until(() -> proxy.sessions().size() == 2);
        assertThat(upgrade("127.0.0.1", "/e").statusLine()).startsWith("HTTP/1.1 101");
    }

    @Test
    void givesTheSlotBackWhenTheHandshakeFails() throws Exception {
        start(ProxyBuilder.create().maxConnectionsPerIp(1));
        for (int i = 0; i < 3; i++) {
            assertThat(upgrade("127.0.0.1", "/reject403").statusLine()).as("refused by the backend")
                    .startsWith("HTTP/1.1 403");
        }
        proxy.close();
        proxy = proxy.toBuilder().route("/down/", Backend.of("ws://127.0.0.1:1")).build();
        proxy.start();
        for (int i = 0; i < 3; i++) {
            assertThat(upgrade("127.0.0.1", "/down/x").statusLine()).as("backend unreachable")
                    .startsWith("HTTP/1.1 502");
        }
        assertThat(upgrade("127.0.0.1", "/ok").statusLine()).as("failed handshakes kept no slot")
                .startsWith("HTTP/1.1 101");
    }

    /**
     * User code that throws, an {@code Error} or a checked exception included, gets its documented answer, and the
     * connection slot is given back; so does an authenticator's already completed minimal stage, whose own
     * {@code isDone()} throws.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("userCodeThatThrows")
    void givesTheSlotBackWhateverUserCodeThrows(String what, Consumer<RouteBuilder> code, int status) throws Exception {
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).maxConnectionsPerIp(1)
                .route("/", r -> code.accept(r.backends(backend.backend()))).build();
        proxy.start();
        for (int i = 1; i <= 2; i++) {
            try (RawHttpExchange exchange = RawHttpExchange.upgradeFrom("127.0.0.1", proxy.uri().getPort(), "/x")) {
                assertThat(exchange.statusLine()).as("%s, attempt %d", what, i).startsWith("HTTP/1.1 " + status);
            }
            await().atMost(Duration.ofSeconds(10)).until(() -> ((WebSocketProxyHandler) proxy.handler()).held(),
                    held -> held.equals(new WebSocketProxyHandler.Held(0, 0, 0, 0)));
        }
    }

    static Stream<Arguments> userCodeThatThrows() throws Exception {
        int closedPort = Clients.closedPort();
        return Stream.of(
                arguments("an origin validator's Error", (Consumer<RouteBuilder>) r -> r.originValidator(
                        (origin, request) -> {
                            throw new AssertionError("origin");
                        }), 500),
                arguments("a selector's Error", (Consumer<RouteBuilder>) r -> r.backendSelector(context -> {
                    throw new AssertionError("select");
                }), 500),
                arguments("an authenticator's Error", (Consumer<RouteBuilder>) r -> r.authenticator(request -> {
                    throw new AssertionError("authenticate");
                }), 500),
                arguments("an authenticator's checked exception", (Consumer<RouteBuilder>) r -> r.authenticator(
                        request -> sneakyThrow(new java.io.IOException("authenticate"))), 500),
                arguments("an authenticator's completed minimal stage", (Consumer<RouteBuilder>) r -> r.authenticator(
                        request -> CompletableFuture.completedStage(AuthDecision.allow())), 101),
                arguments("a timeout policy that throws", (Consumer<RouteBuilder>) r -> r.timeoutPolicy(
                        new TimeoutPolicy() {
                            @Override
                            public Duration connectTimeout() {
                                throw new IllegalStateException("configuration unavailable");
                            }

                            @Override
                            public Duration idleTimeout() {
                                return Duration.ofMinutes(1);
                            }
                        }), 101),
                arguments("a listener's Error on a failed connect", (Consumer<RouteBuilder>) r -> r
                        .backends(Backend.of("ws://127.0.0.1:" + closedPort)).listener(new ProxyListener() {
                            @Override
                            public void onBackendConnectFailed(HandshakeRequest request, Backend backend,
                                    Throwable cause) {
                                throw new AssertionError("listener");
                            }
                        }), 502));
    }

    /** Throws a checked exception undeclared, as Kotlin code or Lombok's {@code @SneakyThrows} do. */
    @SuppressWarnings("unchecked")
    private static <T, E extends Throwable> T sneakyThrow(Throwable e) throws E {
        throw (E) e;
    }

    @Test
    void limitsTheClientBehindATrustedProxyNotTheProxy() throws Exception {
        start(ProxyBuilder.create().trustedProxies("127.0.0.2/32").maxConnectionsPerIp(1));
        assertThat(upgrade("127.0.0.2", "/a", "X-Forwarded-For: 198.51.100.7").statusLine())
                .startsWith("HTTP/1.1 101");
        assertThat(upgrade("127.0.0.2", "/b", "X-Forwarded-For: 198.51.100.8").statusLine())
                .as("another client behind the same proxy").startsWith("HTTP/1.1 101");
        assertThat(upgrade("127.0.0.2", "/c", "X-Forwarded-For: 198.51.100.7").statusLine())
                .startsWith("HTTP/1.1 429");
    }

    @Test
    void countsAnIpv6ClientWithTheOtherAddressesOfItsSlash64AndAnIpv4ClientByItsAddress() throws Exception {
        // Counted by its full address, one IPv6 host, which has a whole /64, had a slot for each of its 2^64 addresses.
        RecordingListener listener = new RecordingListener();
        start(ProxyBuilder.create().trustedProxies("127.0.0.2/32").maxConnectionsPerIp(1).listener(listener));
        RawHttpExchange first = upgrade("127.0.0.2", "/a", "X-Forwarded-For: 2001:db8::1");
        assertThat(first.statusLine()).startsWith("HTTP/1.1 101");
        RawHttpExchange sameBlock = upgrade("127.0.0.2", "/b", "X-Forwarded-For: 2001:db8::2");
        assertThat(sameBlock.statusLine()).as("another address of the same /64").startsWith("HTTP/1.1 429");
        assertThat(sameBlock.head()).containsIgnoringCase("Retry-After: 1");
        assertThat(listener.first(RecordingListener.Rejected.class).reason())
                .isEqualTo("too many sessions from 2001:db8::2 in 2001:db8::/64");
        assertThat(upgrade("127.0.0.2", "/c", "X-Forwarded-For: 2001:db8:0:1::1").statusLine())
                .as("an address of another /64").startsWith("HTTP/1.1 101");
        assertThat(backend.httpConnections.get()).as("no backend connection for the refused one").isEqualTo(2);
        assertThat(backend.nextUpgrade().header("X-Real-IP")).as("the full address").isEqualTo("2001:db8::1");
        assertThat(backend.nextUpgrade().header("X-Real-IP")).isEqualTo("2001:db8:0:1::1");

        // An IPv4-mapped client and its IPv4 form are one client; IPv4 clients are never counted by a block.
        assertThat(upgrade("127.0.0.2", "/d", "X-Forwarded-For: ::ffff:198.51.100.7").statusLine())
                .startsWith("HTTP/1.1 101");
        assertThat(upgrade("127.0.0.2", "/e", "X-Forwarded-For: 198.51.100.7").statusLine())
                .startsWith("HTTP/1.1 429");
        assertThat(upgrade("127.0.0.2", "/f", "X-Forwarded-For: 198.51.100.8").statusLine())
                .startsWith("HTTP/1.1 101");

        first.close(); // the /64's session ends: its slot comes back, to another of its addresses
        await().until(() -> proxy.sessions().size() == 3);
        assertThat(upgrade("127.0.0.2", "/g", "X-Forwarded-For: 2001:db8::2").statusLine())
                .startsWith("HTTP/1.1 101");
        await().until(() -> proxy.sessions().size() == 4);
        assertThat(proxy.sessions()).extracting(s -> s.clientAddress().getAddress())
                .as("sessions name their client's full address")
                .containsExactlyInAnyOrder(InetAddress.getByName("2001:db8:0:1::1"),
                        InetAddress.getByName("198.51.100.7"), InetAddress.getByName("198.51.100.8"),
                        InetAddress.getByName("2001:db8::2"));
    }

    @ParameterizedTest(name = "/{0}: {1} after 2001:db8::1 gets {2}")
    @CsvSource({"128, 2001:db8::2, 101", "64, 2001:db8::ffff:ffff:ffff:ffff, 429", "64, 2001:db8:0:1::, 101",
            "48, 2001:db8:0:ffff::1, 429", "48, 2001:db8:1::1, 101", "1, 7fff::1, 429", "1, 8000::1, 101"})
    void countsAnIpv6ClientByTheBlockOfItsConfiguredPrefix(int bits, String second, int status) throws Exception {
        start(ProxyBuilder.create().trustedProxies("127.0.0.2/32").maxConnectionsPerIp(1).perIpIpv6Prefix(bits));
        assertThat(upgrade("127.0.0.2", "/a", "X-Forwarded-For: 2001:db8::1").statusLine())
                .startsWith("HTTP/1.1 101");
        assertThat(upgrade("127.0.0.2", "/b", "X-Forwarded-For: " + second).statusLine())
                .startsWith("HTTP/1.1 " + status);
    }

    @Test
    void namesAnIpv6ClientByItsBareShortestAddressWhetherOrNotItsPeerIsTrusted() throws Exception {
        assumeThat(Clients.ipv6LoopbackAvailable()).as("IPv6 loopback (::1) is available").isTrue();
        // Backends parse these headers as addresses: "[0:0:0:0:0:0:0:1]" is none, and a long form is not the
        // one nginx's $remote_addr sends ("::1", "2001:db8::1", RFC 5952).
        startOnIpv6Loopback(ProxyBuilder.create());
        assertThat(upgradeOverIpv6("X-Forwarded-For: 2001:db8::7").status()).isEqualTo(101);
        TestBackend.Upgrade seen = backend.nextUpgrade();
        assertThat(seen.header("X-Forwarded-For")).as("no trusted proxies").isEqualTo("::1");
        assertThat(seen.header("X-Real-IP")).isEqualTo("::1");
        closeIpv6ClientsAndProxy();

        startOnIpv6Loopback(ProxyBuilder.create().trustedProxies("10.0.0.0/8"));
        assertThat(upgradeOverIpv6("X-Forwarded-For: 2001:db8::7").status()).isEqualTo(101);
        seen = backend.nextUpgrade();
        assertThat(seen.header("X-Forwarded-For")).as("a peer outside the trusted proxies").isEqualTo("::1");
        assertThat(seen.header("X-Real-IP")).isEqualTo("::1");
        closeIpv6ClientsAndProxy();

        // Behind a trusted proxy, the client is one address however its hop is spelled: one per-address slot.
        startOnIpv6Loopback(ProxyBuilder.create().trustedProxies("::1/128").maxConnectionsPerIp(1));
        assertThat(upgradeOverIpv6("X-Forwarded-For: 2001:DB8:0:0:0:0:0:1").status()).isEqualTo(101);
        seen = backend.nextUpgrade();
        assertThat(seen.header("X-Real-IP")).as("the client hop, in short form").isEqualTo("2001:db8::1");
        assertThat(seen.header("X-Forwarded-For")).as("the trusted chain as sent, then the peer")
                .isEqualTo("2001:DB8:0:0:0:0:0:1, ::1");
        assertThat(upgradeOverIpv6("X-Forwarded-For: 2001:db8::1").status()).isEqualTo(429);
    }

    @Test
    void refusesOverTheGlobalLimitWith503() throws Exception {
        start(ProxyBuilder.create().maxConnections(1));
        assertThat(upgrade("127.0.0.1", "/a").statusLine()).startsWith("HTTP/1.1 101");
        RawHttpExchange refused = upgrade("127.0.0.2", "/b");
        assertThat(refused.statusLine()).startsWith("HTTP/1.1 503");
        assertThat(refused.head()).containsIgnoringCase("Retry-After:");
    }

    @Test
    void refusesHandshakesOverTheRatePerAddress() throws Exception {
        start(ProxyBuilder.create().handshakeRatePerIp(1));
        assertThat(upgrade("127.0.0.1", "/reject403").statusLine()).startsWith("HTTP/1.1 403");
        RawHttpExchange limited = upgrade("127.0.0.1", "/reject403");
        assertThat(limited.statusLine()).startsWith("HTTP/1.1 429");
        assertThat(backend.upgrades).as("the limited handshake never reached the backend").hasSize(1);
        assertThat(upgrade("127.0.0.3", "/reject403").statusLine()).as("another address has its own rate")
                .startsWith("HTTP/1.1 403");
    }

    @Test
    void ratesAnIpv6ClientWithTheOtherAddressesOfItsSlash64AndAnIpv4ClientByItsAddress() throws Exception {
        // Each refusal follows the handshake it is counted with at once: the bucket gets a token back after 1 s.
        start(ProxyBuilder.create().trustedProxies("127.0.0.2/32").handshakeRatePerIp(1));
        assertThat(upgrade("127.0.0.2", "/reject403", "X-Forwarded-For: 2001:db8::1").statusLine())
                .startsWith("HTTP/1.1 403");
        assertThat(upgrade("127.0.0.2", "/reject403", "X-Forwarded-For: 2001:db8::2").statusLine())
                .as("another address of the same /64").startsWith("HTTP/1.1 429");
        assertThat(upgrade("127.0.0.2", "/reject403", "X-Forwarded-For: 2001:db8:0:1::1").statusLine())
                .as("an address of another /64 has its own rate").startsWith("HTTP/1.1 403");

        assertThat(upgrade("127.0.0.2", "/reject403", "X-Forwarded-For: ::ffff:198.51.100.7").statusLine())
                .startsWith("HTTP/1.1 403");
        assertThat(upgrade("127.0.0.2", "/reject403", "X-Forwarded-For: 198.51.100.7").statusLine())
                .as("the IPv4 form of the IPv4-mapped client").startsWith("HTTP/1.1 429");
        assertThat(upgrade("127.0.0.2", "/reject403", "X-Forwarded-For: 198.51.100.6").statusLine())
                .as("an IPv4 neighbour").startsWith("HTTP/1.1 403");
        assertThat(backend.upgrades).as("the limited handshakes never reached the backend").hasSize(4);
    }

    private void startOnIpv6Loopback(ProxyBuilder builder) throws Exception {
        proxy = builder.listen("::1", 0).route("/", backend.backend()).build();
        proxy.start();
    }

    /** An upgrade over {@code ::1} to the proxy started by {@link #startOnIpv6Loopback}; kept open to the end. */
    private RawHttp.Response upgradeOverIpv6(String header) throws IOException {
        RawHttp client = RawHttp.connect(proxy);
        ipv6Clients.add(client);
        int colon = header.indexOf(':');
        return client.exchange(Request.upgrade("/chat", RawHttp.host(proxy))
                .add(header.substring(0, colon), header.substring(colon + 1).trim()));
    }

    private void closeIpv6ClientsAndProxy() throws Exception {
        for (RawHttp client : ipv6Clients) {
            client.close();
        }
        ipv6Clients.clear();
        await().until(() -> proxy.sessions().isEmpty());
        proxy.close();
    }
}
