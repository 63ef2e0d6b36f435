package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.net.URI;
import java.time.Duration;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Map;

import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.junit.jupiter.api.Test;

import dev.wsproxy.internal.RouteSettings;

/** The builder and the value types validate what they are given; no network. */
class ProxyBuilderTest {

    private static final Backend BACKEND = Backend.of("ws://127.0.0.1:9");

    @Test
    void refusesAProxyWithoutRoutes() {
        assertThatThrownBy(() -> ProxyBuilder.create().build())
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("no route");
    }

    @Test
    void refusesARouteWithoutBackends() {
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", r -> r.maxMessageSize(10)).build())
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("/ws/ has no backends");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at least one backend");
    }

    @Test
    void refusesASelectorWhoseForRouteReturnsNull() {
        // Accepted, the null selector failed every request on the route with 500 ("Backend selector null failed").
        class NoSelector implements BackendSelector {
            @Override
            public Backend select(SelectionContext context) {
                return context.candidates().isEmpty() ? null : context.candidates().get(0).backend();
            }

            @Override
            public BackendSelector forRoute(String route) {
                return null;
            }
        }
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", BACKEND).backendSelector(new NoSelector()).build())
                .isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("backendSelector " + NoSelector.class.getName()
                        + ".forRoute(\"/ws/\") returned null");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", BACKEND)
                        .route("/other/", r -> r.backends(BACKEND).backendSelector(new NoSelector())).build())
                .as("a route's own selector").isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(".forRoute(\"/other/\") returned null");
    }

    @Test
    void refusesABackendUriGivenTwiceInARoute() {
        // Two entries with one URI shared a state: failover stopped at the second as already tried (502 while
        // another backend was up), and failures counted on the first only.
        Backend other = Backend.of("ws://127.0.0.1:10");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", BACKEND, BACKEND, other))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("backends: [ws://127.0.0.1:9, ws://127.0.0.1:9, ws://127.0.0.1:10] (expected: each URI "
                        + "once; ws://127.0.0.1:9 is given twice)");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", r -> r.backends(
                        Backend.of("http://127.0.0.1:9"), BACKEND.withWeight(3).asBackup())))
                .as("one URI, however spelled and weighted").isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("ws://127.0.0.1:9 is given twice");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", Backend.of("ws://Chat.Example:80/"),
                        Backend.of("ws://chat.example/")))
                .as("the default port written out, the host in capitals").isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("ws://chat.example/ is given twice");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", Backend.of("wss://[::1]"),
                        Backend.of("wss://[0:0:0:0:0:0:0:1]:443")))
                .as("one IPv6 address in two forms").isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("wss://[::1] is given twice");
        ProxyBuilder.create().route("/ws/", Backend.of("ws://chat.example"), Backend.of("ws://chat.example/"),
                Backend.of("ws://chat.example:8080"), Backend.of("wss://chat.example"));
        WebSocketProxy proxy = ProxyBuilder.create().route("/ws/", BACKEND).build();
        assertThatThrownBy(() -> proxy.updateBackends("/ws/", List.of(other, BACKEND, other)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("ws://127.0.0.1:10 is given twice");
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::backend).containsExactly(BACKEND);
        proxy.updateBackends("/ws/", List.of(other, BACKEND));
        assertThat(proxy.backendStatus("/ws/")).extracting(BackendStatus::backend).containsExactly(other, BACKEND);
    }

    @Test
    void refusesMalformedAndDuplicateRoutePrefixes() {
        assertThatThrownBy(() -> ProxyBuilder.create().route("ws/", BACKEND))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("pathPrefix: 'ws/'");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/a%2F/", BACKEND))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", BACKEND).route("/ws/", BACKEND))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not routed yet");
        // Request paths are matched with dot segments resolved and ;parameters removed: these never matched.
        for (String prefix : new String[] {"/ws/../admin/", "/./ws/", "/ws/..", "/ws/.", "/ws;v=1/", "/ws/x;"}) {
            assertThatThrownBy(() -> ProxyBuilder.create().route(prefix, BACKEND)).as(prefix)
                    .isInstanceOf(IllegalArgumentException.class).hasMessage("pathPrefix: '" + prefix
                            + "' (expected: no . or .. segment and no ;parameter, which request paths are matched "
                            + "without)");
        }
        for (String prefix : new String[] {"/.well-known/", "/ws./", "/..ws/", "/a.b/c..d"}) {
            assertThat(ProxyBuilder.create().route(prefix, BACKEND).build()).as(prefix).isNotNull();
        }
    }

    @Test
    void validatesSettersAtOnce() {
        ProxyBuilder builder = ProxyBuilder.create();
        assertThatThrownBy(() -> builder.listen("127.0.0.1", 70000))
                .hasMessage("port: 70000 (expected: 0 to 65535)");
        for (String host : new String[] {"[localhost]", "[::1", "::1]", "[]", "[[::1]]", " "}) {
            assertThatThrownBy(() -> builder.listen(host, 0)).as(host)
                    .hasMessage("host: '" + host + "' (expected: a host name or address; brackets only around an "
                            + "IPv6 address, like [::1])");
        }
        assertThatThrownBy(() -> builder.maxMessageSize(0)).hasMessage("maxMessageSize: 0 (expected: > 0)");
        assertThatThrownBy(() -> builder.drainTimeout(Duration.ofSeconds(-1)))
                .hasMessage("drainTimeout: PT-1S (expected: >= 0)");
        for (int bits : new int[] {0, -1, 129, Integer.MAX_VALUE}) {
            assertThatThrownBy(() -> builder.perIpIpv6Prefix(bits)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("perIpIpv6Prefix: " + bits + " (expected: 1 to 128)");
        }
        assertThat(builder.perIpIpv6Prefix(1).perIpIpv6Prefix(128)).isSameAs(builder);
        assertThatThrownBy(() -> builder.backendSelector(null)).isInstanceOf(NullPointerException.class);
    }

    @Test
    void refusesAListenHostWithASpaceOrAControlCharacterAtOnce() {
        // Accepted, such a host failed start() only, with an IOException that carried the character raw ("Failed to
        // bind to 127.0.0.1" and a line break). Beyond ASCII too: a C1 control (U+0085, a line break to many log
        // viewers), a space that is no ASCII one (U+00A0, U+2028) and a format character (U+202E, which turns the
        // text after it around) went through.
        ProxyBuilder builder = ProxyBuilder.create();
        Map<String, String> shown = Map.ofEntries(Map.entry("127.0.0.1\n", "127.0.0.1\\u000A"),
                Map.entry("local host", "local host"), Map.entry("exa\tmple", "exa\\u0009mple"),
                Map.entry("::1\u0000", "::1\\u0000"), Map.entry("[::1\r]", "[::1\\u000D]"),
                Map.entry("host\u007f", "host\\u007F"), Map.entry("127.0.0.1\u0085", "127.0.0.1\\u0085"),
                Map.entry("local\u00a0host", "local\\u00A0host"), Map.entry("host\u2028", "host\\u2028"),
                Map.entry("\u202elocalhost", "\\u202Elocalhost"));
        shown.forEach((host, escaped) -> assertThatThrownBy(() -> builder.listen(host, 0)).as(escaped)
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("host: '" + escaped + "' (expected: a host name or address, without spaces, control or "
                        + "format characters)"));
    }

    @Test
    void refusesAHealthCheckPathThatCannotBeSentAsIs() {
        // Accepted, such a path failed every probe on building its URI (URISyntaxException, not logged): every
        // backend of the route went down.
        assertThatThrownBy(() -> HealthCheck.http("/ready|live")).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("path: '/ready|live' (expected: a path in URI syntax, sent as is: '|' at index 6 must be "
                        + "percent-encoded, as %7C)");
        assertThatThrownBy(() -> HealthCheck.webSocket("/health?load=90%")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'/health?load=90%'").hasMessageContaining("'%' at index 15 starts no escape");
        for (String path : List.of("/{id}", "/a^b", "/a\\b", "/\"q\"", "/<x>", "/%zz")) {
            assertThatThrownBy(() -> HealthCheck.webSocket(path)).as(path)
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(path);
        }
        assertThatThrownBy(() -> HealthCheck.http("/health#deep")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("fragment, which is never sent");
        assertThat(HealthCheck.http("/ready%7Clive?deep=1").path()).as("encoded, and a query")
                .isEqualTo("/ready%7Clive?deep=1");
    }

    @Test
    void validatesTheCapOnBackendHandshakesInFlight() {
        assertThatThrownBy(() -> ProxyBuilder.create().maxPendingBackendHandshakes(0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("maxPendingBackendHandshakes: 0 (expected: > 0)");
        assertThatThrownBy(() -> ProxyBuilder.create().route("/ws/", r -> r.backends(BACKEND)
                .maxPendingBackendHandshakes(-1)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("maxPendingBackendHandshakes: -1 (expected: > 0)");
        assertThat(ProxyBuilder.create().maxPendingBackendHandshakes(1)
                .route("/ws/", r -> r.backends(BACKEND).maxPendingBackendHandshakes(Integer.MAX_VALUE))
                .build()).isNotNull();
    }

    @Test
    void validatesTimeouts() {
        assertThatThrownBy(() -> TimeoutPolicy.custom().connect(Duration.ZERO))
                .hasMessage("connect: PT0S (expected: > 0)");
        assertThatThrownBy(() -> TimeoutPolicy.idle(Duration.ofSeconds(-1)))
                .hasMessage("idle: PT-1S (expected: >= 0)");
        TimeoutPolicy policy = TimeoutPolicy.custom().connect(Duration.ofSeconds(3)).idle(Duration.ZERO)
                .close(Duration.ofSeconds(2)).maxLifetime(Duration.ofHours(8)).build();
        assertThat(policy.connectTimeout()).isEqualTo(Duration.ofSeconds(3));
        assertThat(policy.idleTimeout()).isEqualTo(Duration.ZERO);
        assertThat(policy.closeTimeout()).isEqualTo(Duration.ofSeconds(2));
        assertThat(policy.maxLifetime()).isEqualTo(Duration.ofHours(8));
        assertThat(TimeoutPolicy.ofDefaults().idleTimeout()).isEqualTo(Duration.ofHours(1));
        assertThat(TimeoutPolicy.ofDefaults().connectTimeout()).isEqualTo(Duration.ofSeconds(10));
    }

    @Test
    void normalisesBackendUris() {
        assertThat(Backend.of("http://h:1").uri()).isEqualTo(URI.create("ws://h:1"));
        assertThat(Backend.of("HTTPS://h/base/").uri()).isEqualTo(URI.create("wss://h/base/"));
        assertThat(Backend.of("ws://h:1").withWeight(3).weight()).isEqualTo(3);
        assertThat(Backend.of("ws://h:1")).isEqualTo(Backend.of("http://h:1"));
        assertThat(Backend.of("ws://h:1").withWeight(2)).isNotEqualTo(Backend.of("ws://h:1"));
        // One spelling for one backend (compared as text: URI.equals ignores the host's case already).
        assertThat(Backend.of("ws://Chat.Example:80/base").uri()).hasToString("ws://chat.example/base");
        assertThat(Backend.of("https://Chat.Example:443").uri()).hasToString("wss://chat.example");
        assertThat(Backend.of("wss://[0:0:0:0:0:0:0:1]:443/").uri()).hasToString("wss://[::1]/");
        assertThat(Backend.of("ws://[2001:DB8::A]:8080").uri()).hasToString("ws://[2001:db8::a]:8080");
        assertThat(Backend.of("ws://h:443").uri()).as("not the default port of ws").hasToString("ws://h:443");
        assertThatThrownBy(() -> Backend.of("ftp://h")).hasMessageContaining("expected: scheme ws, wss, http or https");
        assertThatThrownBy(() -> Backend.of("ws:///path")).hasMessageContaining("expected: a host");
        assertThatThrownBy(() -> Backend.of("ws://user@h")).hasMessageContaining("no user info");
        assertThatThrownBy(() -> Backend.of("ws://admin:s3cret@h:1/p")).as("a password is not echoed into logs")
                .hasMessage("uri: ws://***@h:1/p (expected: no user info)");
        for (String secret : List.of("ws://admin:s3cret@h:1/a b", "ws://admin:s3cret@my_backend:1",
                "ws://admin:s3c@ret@h:1", "ftp://admin:s3cret@h", "ws://admin:s3cret@h:70000")) {
            assertThatThrownBy(() -> Backend.of(secret)).as(secret).hasMessageNotContaining("s3c")
                    .hasMessageContaining("***@").hasNoCause();
        }
        assertThatThrownBy(() -> Backend.of("ws://h:1/a b")).hasMessage(
                "uri: ws://h:1/a b (expected: a ws:// or wss:// URI): Illegal character in path");
        // URI takes any port that fits an int: a typo such as :300000 started a proxy that answered 502 to everyone.
        assertThatThrownBy(() -> Backend.of("ws://127.0.0.1:70000")).hasMessageContaining("a port from 1 to 65535");
        assertThatThrownBy(() -> Backend.of("ws://h:65536")).hasMessageContaining("a port from 1 to 65535");
        assertThatThrownBy(() -> Backend.of("wss://h:0")).hasMessageContaining("a port from 1 to 65535");
        assertThat(Backend.of("ws://h:65535").uri().getPort()).isEqualTo(65535);
        assertThatThrownBy(() -> Backend.of("ws://h/?q=1")).hasMessageContaining("no query");
        assertThatThrownBy(() -> Backend.of("ws://h").withWeight(0)).hasMessageContaining("1 to 1000");
    }

    @Test
    void keepsBuiltProxiesIndependentOfTheBuilder() {
        ProxyBuilder builder = ProxyBuilder.create().route("/a/", BACKEND);
        WebSocketProxy first = builder.build();
        builder.route("/b/", BACKEND);
        WebSocketProxy derived = first.toBuilder().route("/c/", BACKEND).build();
        assertThat(first.toBuilder().build()).isNotSameAs(first);
        assertThat(derived).isNotNull();
        assertThatThrownBy(() -> first.toBuilder().route("/a/", BACKEND))
                .as("the derived builder has the original's routes").isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(first::uri).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void toBuilderKeepsEverySetting() throws Exception {
        // Every field of the builder and of a route's settings set, so that a field added later and not copied fails
        // here: the DNS name of a route was not, and a proxy derived from one served 503 forever.
        ProxyBuilder builder = ProxyBuilder.create()
                .listen("127.0.0.2", 9001)
                .reusePort(true)
                .route("/dns/", r -> r.backendsFromDns("ws://localhost:9", Duration.ofSeconds(7))
                        .backendSelector(BackendSelector.leastConnections())
                        .timeoutPolicy(TimeoutPolicy.idle(Duration.ofMinutes(5)))
                        .originValidator(OriginValidator.sameOrigin())
                        .authenticator(Authenticator.of(request -> AuthDecision.allow()))
                        .maxMessageSize(1000)
                        .maxFragmentsPerMessage(7)
                        .messageRateLimit(9)
                        .plainHttp(PlainHttp.NEXT_HANDLER)
                        .preserveHost(false)
                        .compressionPassThrough(true)
                        .passiveHealth(3, Duration.ofSeconds(4))
                        .failover(2, Duration.ofSeconds(5))
                        .maxPendingBackendHandshakes(11)
                        .healthCheck(HealthCheck.http("/health"))
                        .listener(new ProxyListener() { }))
                .route("/ws/", BACKEND)
                .backendSelector(BackendSelector.random())
                .timeoutPolicy(TimeoutPolicy.idle(Duration.ofMinutes(6)))
                .originValidator(OriginValidator.allowList("https://app.example.com"))
                .authenticator(Authenticator.of(request -> AuthDecision.reject(401)))
                .maxMessageSize(2000)
                .maxFragmentsPerMessage(8)
                .messageRateLimit(10)
                .plainHttp(PlainHttp.NEXT_HANDLER)
                .preserveHost(false)
                .compressionPassThrough(true)
                .passiveHealth(4, Duration.ofSeconds(5))
                .failover(3, Duration.ofSeconds(6))
                .maxPendingBackendHandshakes(12)
                .healthCheck(HealthCheck.webSocket("/health"))
                .listener(new ProxyListener() { })
                .nextHandler(new NextHandler())
                .drainTimeout(Duration.ofSeconds(3))
                .trustedProxies("10.0.0.0/8")
                .maxConnectionsPerIp(5)
                .maxConnections(50)
                .handshakeRatePerIp(8)
                .perIpIpv6Prefix(56)
                .handshakeTimeout(Duration.ofSeconds(2))
                .maxPendingHandshakes(77)
                .tls(ServerTls.custom(SslContextFactory.Server::new))
                .backendTls(BackendTls.insecureTrustAll());
        ProxyBuilder fresh = ProxyBuilder.create();
        for (Field field : settingsFields(ProxyBuilder.class)) {
            assertThat(field.get(builder)).as("ProxyBuilder.%s, set by this test", field.getName())
                    .isNotEqualTo(field.get(fresh));
        }
        Object dnsRoute = ((Map<?, ?>) field(ProxyBuilder.class, "routes").get(builder)).get("/dns/");
        for (Field field : settingsFields(RouteSettings.class)) {
            assertThat(field.get(dnsRoute)).as("RouteSettings.%s of /dns/, set by this test", field.getName())
                    .isNotNull();
        }

        assertSameSettings("", builder, builder.build().toBuilder());
    }

    /** Every setting of {@code copy} equals the original's, routes and defaults compared setting by setting. */
    private static void assertSameSettings(String path, Object original, Object copy) throws Exception {
        for (Field field : settingsFields(original.getClass())) {
            Object value = field.get(original);
            Object copied = field.get(copy);
            String name = path + field.getName();
            if (value instanceof RouteSettings settings) {
                assertSameSettings(name + ".", settings, copied);
            } else if (value instanceof Map<?, ?> routes) {
                assertThat(List.copyOf(((Map<?, ?>) copied).keySet())).as(name).isEqualTo(List.copyOf(routes.keySet()));
                for (Map.Entry<?, ?> route : routes.entrySet()) {
                    assertSameSettings(name + "[" + route.getKey() + "].", route.getValue(),
                            ((Map<?, ?>) copied).get(route.getKey()));
                }
            } else if (value instanceof Collection<?> values) {
                assertThat(List.copyOf((Collection<?>) copied)).as(name).isEqualTo(List.copyOf(values));
            } else {
                assertThat(copied).as(name).isEqualTo(value);
            }
        }
    }

    private static List<Field> settingsFields(Class<?> type) {
        return Arrays.stream(type.getDeclaredFields())
                .filter(field -> !Modifier.isStatic(field.getModifiers()))
                .peek(field -> field.setAccessible(true))
                .toList();
    }

    private static Field field(Class<?> type, String name) throws NoSuchFieldException {
        Field field = type.getDeclaredField(name);
        field.setAccessible(true);
        return field;
    }

    @Test
    void roundRobinGivesEachRouteItsOwnTurn() {
        BackendSelector shared = BackendSelector.roundRobin();
        BackendSelector one = shared.forRoute("/one/");
        BackendSelector two = shared.forRoute("/two/");
        assertThat(one).isNotSameAs(two);
    }
}
