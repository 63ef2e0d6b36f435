package dev.wsproxy.examples.standalone;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.entry;

import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.TimeoutPolicy;

/** The command-line parser on its own: no network, no process. */
class LauncherOptionsTest {

    private static final String ROUTE = "--route";
    private static final String WS_ROUTE = "/ws/=ws://127.0.0.1:3000";

    @Test
    void appliesDefaultsWhenOnlyARouteIsGiven() throws Exception {
        LauncherOptions options = LauncherOptions.parse(ROUTE, WS_ROUTE);

        assertThat(options.help()).isFalse();
        assertThat(options.host()).isEqualTo("127.0.0.1");
        assertThat(options.port()).isEqualTo(8080);
        assertThat(options.balance()).isEqualTo("round-robin");
        assertThat(options.allowedOrigins()).isEmpty();
        assertThat(options.connectTimeout()).isEqualTo(TimeoutPolicy.DEFAULT_CONNECT_TIMEOUT);
        assertThat(options.idleTimeout()).isEqualTo(TimeoutPolicy.DEFAULT_IDLE_TIMEOUT);
        assertThat(options.pingInterval()).isZero();
        assertThat(options.maxMessageSize()).isEqualTo(ProxyBuilder.DEFAULT_MAX_MESSAGE_SIZE);
        assertThat(options.trustedProxies()).isEmpty();
        assertThat(options.maxConnectionsPerIp()).isEmpty();
        assertThat(options.maxConnections()).isEmpty();
        assertThat(options.handshakeRatePerIp()).isEmpty();
        assertThat(options.perIpIpv6Prefix()).isEqualTo(ProxyBuilder.DEFAULT_PER_IP_IPV6_PREFIX);
        assertThat(options.handshakeTimeout()).isEqualTo(ProxyBuilder.DEFAULT_HANDSHAKE_TIMEOUT);
        assertThat(options.maxPendingHandshakes()).isEqualTo(ProxyBuilder.DEFAULT_MAX_PENDING_HANDSHAKES);
        assertThat(options.routes()).containsExactly(entry("/ws/", List.of(Backend.of("ws://127.0.0.1:3000"))));
    }

    @Test
    void requiresAtLeastOneRoute() {
        assertUsageError(new String[] {"--listen", "127.0.0.1:8080"},
                "--route: missing (expected: at least one --route PATH=URL[,URL...] or PATH=@FILE, like"
                        + " /ws/=ws://127.0.0.1:3000)");
        assertUsageError(new String[0], "--route: missing");
    }

    @Test
    void helpWinsOverEverythingAfterIt() throws Exception {
        assertThat(LauncherOptions.parse("--help").help()).isTrue();
        assertThat(LauncherOptions.parse("-h").help()).isTrue();
        assertThat(LauncherOptions.parse("--listen", "0.0.0.0:1", "--help", "--bogus").help()).isTrue();
    }

    @Test
    void helpWinsOverBadFlagsBeforeIt() throws Exception {
        assertThat(LauncherOptions.parse("--listen", "bad", "--help").help()).isTrue();
        assertThat(LauncherOptions.parse("--bogus", "stray", "-h").help()).isTrue();
        assertThat(LauncherOptions.parse(Map.of(), "--route", "/ws/=ws://a:1", "--tls-keystore", "p.p12",
                "--tls-password-env", "UNSET", "--help").help()).as("the password variable is not read").isTrue();
    }

    @Test
    void saysThatHelpTakesNoValue() {
        // It was "unknown flag --help (expected: see --help)", naming a flag that exists.
        assertUsageError(new String[] {"--help=yes"}, "--help: takes no value (expected: --help alone)");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--help="}, "--help: takes no value (expected: --help alone)");
    }

    @ParameterizedTest
    @ValueSource(strings = {"--insecure-backend-tls", "--reuse-port", "--compression-pass-through"})
    void namesTheFlagThatTakesNoValueWhenOneFollowsIt(String flag) {
        // It was "unexpected argument 'true'", naming no flag.
        assertUsageError(Map.of(), new String[] {ROUTE, WS_ROUTE, flag, "true"},
                flag + ": takes no value, but 'true' follows it (expected: " + flag + " alone)");
        assertUsageError(Map.of(), new String[] {ROUTE, WS_ROUTE, "/chat/=ws://127.0.0.1:3001"},
                "unexpected argument '/chat/=ws://127.0.0.1:3001' (expected: a flag like --route)");
    }

    @Test
    void usageListsEveryFlag() {
        assertThat(LauncherOptions.usage()).contains("--listen HOST:PORT", "--route PATH=URL[,URL...]",
                "--balance NAME", "least-connections", "default when a backend has a ;weight=N",
                "round-robin with a ;weight=N is refused", "ip-hash", "hash:header:NAME", ";weight=N", ";backup",
                "--allow-origin ORIGIN", "--connect-timeout DURATION", "--idle-timeout DURATION", "--ping-interval DURATION",
                "--max-message-size BYTES", "--trusted-proxy CIDR", "--max-connections-per-ip N",
                "--max-connections N", "--handshake-rate-per-ip N/s", "--per-ip-ipv6-prefix BITS", "default 64,",
                "--tls-keystore PATH", "--tls-client-ca PATH", "mutual TLS",
                "--handshake-timeout DURATION",
                "--max-pending-handshakes N", "slowloris", "default 4096", "429", "503", "--help", "default 127.0.0.1:8080", "default 10s", "default 1h",
                "default 64m").endsWith("\n");
    }

    @ParameterizedTest
    @CsvSource({
        "127.0.0.1:8080, 127.0.0.1, 8080",
        "0.0.0.0:0, 0.0.0.0, 0",
        "localhost:65535, localhost, 65535",
        "[::1]:8080, ::1, 8080",
        "[::]:9000, ::, 9000",
    })
    void parsesListenAddresses(String listen, String host, int port) throws Exception {
        LauncherOptions options = LauncherOptions.parse("--listen", listen, ROUTE, WS_ROUTE);

        assertThat(options.host()).isEqualTo(host);
        assertThat(options.port()).isEqualTo(port);
        assertThat(options.listen()).isEqualTo(listen);
    }

    @ParameterizedTest
    @ValueSource(strings = {"8080", "localhost", ":8080", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
        "::1:8080", "[::1]", "[::1]8080", "127.0.0.1:80x"})
    void rejectsMalformedListenAddresses(String listen) {
        assertUsageError(new String[] {"--listen", listen, ROUTE, WS_ROUTE}, "--listen: '" + listen
                + "' (expected: HOST:PORT, like 127.0.0.1:8080, 0.0.0.0:0 or [::1]:8080)");
    }

    @ParameterizedTest
    @ValueSource(strings = {" :8080", "[ ]:8080", "\t:8080", "my host:8080", " 127.0.0.1:8080", "[::1 ]:8080",
        "[127.0.0.1]:8080", "[localhost]:8080"})
    void rejectsABlankOrSpacedHostAndBracketsAroundANonIpv6Host(String listen) {
        // These passed parse() and failed when the proxy was built: a stack trace and exit 1 for a blank host, a
        // listening failure for a spaced one; brackets were stripped before the library could refuse them.
        assertUsageError(new String[] {"--listen", listen, ROUTE, WS_ROUTE}, "--listen: '" + listen
                + "' (expected: HOST:PORT, like 127.0.0.1:8080, 0.0.0.0:0 or [::1]:8080)");
    }

    @Test
    void acceptsFlagEqualsValue() throws Exception {
        LauncherOptions options = LauncherOptions.parse("--listen=0.0.0.0:9000", "--route=/ws/=ws://a:1,ws://b:2");

        assertThat(options.port()).isEqualTo(9000);
        assertThat(options.routes().get("/ws/")).containsExactly(Backend.of("ws://a:1"), Backend.of("ws://b:2"));
    }

    @Test
    void keepsRoutesInOrderWithAllTheirBackends() throws Exception {
        LauncherOptions options = LauncherOptions.parse(
                ROUTE, "/ws/=ws://10.0.0.1:3000, ws://10.0.0.2:3000",
                ROUTE, "/admin/=https://admin.internal/socket/",
                ROUTE, "/=http://127.0.0.1:3000");

        assertThat(options.routes()).containsOnlyKeys("/ws/", "/admin/", "/");
        assertThat(options.routes().keySet()).containsExactly("/ws/", "/admin/", "/");
        assertThat(options.routes().get("/ws/"))
                .containsExactly(Backend.of("ws://10.0.0.1:3000"), Backend.of("ws://10.0.0.2:3000"));
        assertThat(options.routes().get("/admin/")).extracting(Backend::uri)
                .containsExactly(URI.create("wss://admin.internal/socket/"));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "/ws/                    | --route: '/ws/' (expected: PATH=URL[,URL...] or PATH=@FILE, like /ws/=ws://127.0.0.1:3000)",
        "/ws/=@                  | --route: '/ws/=@' (expected: PATH=URL[,URL...] or PATH=@FILE",
        "=ws://127.0.0.1:3000    | --route: '=ws://127.0.0.1:3000' (expected: PATH=URL[,URL...]",
        "/ws/=                   | --route: '/ws/=' (expected: PATH=URL[,URL...]",
        "ws/=ws://127.0.0.1:3000 | --route: 'ws/=ws://127.0.0.1:3000': pathPrefix: 'ws/' (expected: a path of",
        "/ws/=ftp://host:21      | --route: 'ftp://host:21': uri: ftp://host:21 (expected: scheme ws, wss, http or https)",
        "/ws/=ws://a:1,,ws://b:2 | --route: '' (expected: a ws://, wss://, http:// or https:// URL",
        "/ws/=127.0.0.1:3000     | --route: '127.0.0.1:3000': uri: 127.0.0.1:3000 (expected: a ws:// or wss:// URI)",
    })
    void rejectsMalformedRoutes(String route, String message) {
        assertUsageError(new String[] {ROUTE, route.strip()}, message.strip());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "ws://127.0.0.1:3000/chat?room=1 | (expected: no query; the client's query is forwarded)",
        "ws://127.0.0.1:3000/#top        | (expected: no fragment)",
        "ws://127.0.0.1:70000            | (expected: a port from 1 to 65535)",
        "ws://:3000                      | (expected: a host)",
    })
    void namesTheCauseTheLibraryGivesForARefusedUrl(String url, String cause) {
        // It was the fixed "expected: a ws://, wss://, http:// or https:// URL with a host", for URLs that have both.
        assertUsageError(new String[] {ROUTE, "/ws/=ws://127.0.0.1:3001," + url.strip() + ";weight=2"},
                "--route: '" + url.strip() + "': uri: " + url.strip() + " " + cause.strip());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "/ws/=ws://admin:s3cret@127.0.0.1:3000   | --route: 'ws://***@127.0.0.1:3000': uri: ws://***@127.0.0.1:3000"
                + " (expected: no user info)",
        "/ws/=ws://admin:s3cret@127.0.0.1/a b    | --route: 'ws://***@127.0.0.1/a b': uri: ws://***@127.0.0.1/a b"
                + " (expected: a ws:// or wss:// URI)",
        "/ws/=ws://admin:s3cr@t@127.0.0.1:3000   | --route: 'ws://***@127.0.0.1:3000': uri: ws://***@127.0.0.1:3000",
        "ws://admin:s3cret@127.0.0.1:3000        | --route: 'ws://***@127.0.0.1:3000' (expected: PATH=URL[,URL...]",
        "/ws/=https://admin:s3cret@my_backend:1  | --route: 'https://***@my_backend:1': the host my_backend has an _",
    })
    void masksTheUserInfoOfAUrlInItsMessage(String route, String message) {
        // The password went to stderr, and from there to journald or container logs.
        assertUsageError(new String[] {ROUTE, route.strip()}, message.strip());
        assertThatThrownBy(() -> LauncherOptions.parse(ROUTE, route.strip()))
                .message().doesNotContain("s3cr").doesNotContain("admin");
    }

    @Test
    void explainsThatAHostNameWithAnUnderscoreIsNoHostToJavaNetUri() {
        // A Docker Compose service name: the library's "expected: a host" had the user look at one.
        assertUsageError(new String[] {ROUTE, "/ws/=ws://my_backend:3000"}, "--route: 'ws://my_backend:3000': the"
                + " host my_backend has an _, which java.net.URI takes in no host name (expected: letters, digits, -"
                + " and ., or an IP address)");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "/ws/=ws://a:3000,http://a:3000 | backends: [ws://a:3000, ws://a:3000] (expected: each URI once;"
                + " ws://a:3000 is given twice)",
        "/ws/../x/=ws://a:3000          | pathPrefix: '/ws/../x/' (expected: no . or .. segment and no ;parameter",
        "/ws/./=ws://a:3000             | pathPrefix: '/ws/./' (expected: no . or .. segment",
        "/ws;v/=ws://a:3000             | pathPrefix: '/ws;v/' (expected: no . or .. segment and no ;parameter",
        "/a//b/=ws://a:3000             | pathPrefix: '/a//b/' (expected: a path of visible ASCII starting with /",
    })
    void namesTheCauseTheLibraryGivesForARefusedRoute(String route, String cause) {
        // The flag and the whole value, then the library's own words: a fixed "a PATH starting with /" was printed
        // for all of these, though each starts with /.
        assertUsageError(new String[] {ROUTE, route.strip()}, "--route: '" + route.strip() + "': " + cause.strip());
    }

    @Test
    void endsThePathAtTheFirstEqualsSignWhateverFollows(@TempDir Path dir) throws Exception {
        // It ended at the first =@ for a file and at the = before the first URL otherwise: a PATH holding =@ was read
        // as a file route, and a first URL without its scheme had the PATH cut at its ;weight=.
        assertUsageError(new String[] {ROUTE, "/rooms=a/=ws://127.0.0.1:3000"}, "--route: '/rooms=a/=ws://127.0.0.1:3000':"
                + " PATH ends at the first = (expected: a PATH without =, then =URL[,URL...] or =@FILE)");
        assertUsageError(new String[] {ROUTE, "/a=@b/=ws://127.0.0.1:3000"}, "--route: b/=ws:/127.0.0.1:3000: no such"
                + " file");
        assertUsageError(new String[] {ROUTE, "/ws/=127.0.0.1:3000;weight=2,ws://127.0.0.1:3001"},
                "--route: '127.0.0.1:3000': uri: 127.0.0.1:3000 (expected: a ws:// or wss:// URI)");

        Path file = Files.writeString(dir.resolve("a=@b.backends"), "ws://127.0.0.1:3000\n");
        assertThat(LauncherOptions.parse(ROUTE, "/ws/=@" + file).backendFiles())
                .as("a file name holds = and @").containsExactly(entry("/ws/", file));
    }

    @Test
    void rejectsTheSamePathRoutedTwice() {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, ROUTE, "/ws/=ws://127.0.0.1:4000"},
                "--route: /ws/ routed twice (expected: each PATH once)");
    }

    @ParameterizedTest
    @CsvSource({
        "round-robin, roundRobin",
        "weighted-round-robin, weightedRoundRobin",
        "random, random",
        "two-choices, powerOfTwoChoices",
        "least-connections, leastConnections",
        "ip-hash, ipHash",
        "hash:header:X-User, consistentHash(header X-User)",
        "hash:cookie:session, consistentHash(cookie session)",
        "hash:query:room, consistentHash(query room)",
    })
    void mapsEveryBalanceStrategyToItsSelector(String balance, String selector) throws Exception {
        LauncherOptions options = LauncherOptions.parse("--balance", balance, ROUTE, WS_ROUTE);

        assertThat(options.balance()).isEqualTo(balance);
        assertThat(options.selector()).hasToString(selector);
    }

    @Test
    void roundRobinIsTheDefaultSelector() throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE).selector()).hasToString("roundRobin");
    }

    @ParameterizedTest
    @ValueSource(strings = {"/ws/=ws://a:1;weight=3,ws://b:1", "/ws/=ws://a:1,ws://b:1;backup;weight=2"})
    void picksWeightedRoundRobinWhenABackendHasAWeightAndNoBalanceIsGiven(String route) throws Exception {
        // As nginx's default balancing honours weight=; round-robin ignored it without a word.
        LauncherOptions options = LauncherOptions.parse(ROUTE, route);

        assertThat(options.balance()).isEqualTo("weighted-round-robin");
        assertThat(options.selector()).hasToString("weightedRoundRobin");
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, ROUTE, "/chat/=" + route.substring(5)).selector())
                .as("a weight on any route: --balance applies to every route").hasToString("weightedRoundRobin");
    }

    @Test
    void keepsRoundRobinWhenEveryWeightIsOne() throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, "/ws/=ws://a:1;weight=1,ws://b:1").balance()).isEqualTo("round-robin");
    }

    @ParameterizedTest
    @ValueSource(strings = {"weighted-round-robin", "least-connections", "two-choices", "random", "ip-hash",
        "hash:cookie:sid"})
    void keepsTheBalanceGivenWithWeights(String balance) throws Exception {
        assertThat(LauncherOptions.parse("--balance", balance, ROUTE, "/ws/=ws://a:1;weight=3,ws://b:1").balance())
                .isEqualTo(balance);
    }

    @Test
    void refusesRoundRobinGivenWithAWeightItWouldIgnore() {
        assertUsageError(new String[] {"--balance", "round-robin", ROUTE, WS_ROUTE, ROUTE,
                "/chat/=ws://a:1,ws://b:1;weight=3"}, "--balance: round-robin ignores weights, and --route gives"
                + " ws://b:1;weight=3 (expected: weighted-round-robin or another strategy, which all honour weights,"
                + " or no --balance, which then picks weighted-round-robin)");
    }

    @ParameterizedTest
    @ValueSource(strings = {"least-connections ", "least_conn", "ROUND-ROBIN", "hash", "hash:header", "hash:header:",
        "hash:path:x", "hash:header:X User", "hash:cookie: session", "hash::X-User", "consistent-hash"})
    void rejectsUnknownBalanceStrategies(String balance) {
        assertUsageError(new String[] {"--balance", balance, ROUTE, WS_ROUTE}, "--balance: '" + balance
                + "' (expected: round-robin, weighted-round-robin, random, two-choices, least-connections, ip-hash,"
                + " hash:header:NAME, hash:cookie:NAME or hash:query:NAME)");
    }

    @ParameterizedTest
    @ValueSource(strings = {"hash:header:X-User:", "hash:cookie:session=", "hash:header:X(User)"})
    void rejectsAHashKeyNameNoRequestCanCarryWithTheLibrarysReason(String balance) {
        // The library refuses such names; the launcher let its IllegalArgumentException out as a stack trace.
        String name = balance.substring(balance.lastIndexOf(':', balance.length() - 2) + 1);
        assertThatThrownBy(() -> LauncherOptions.parse("--balance", balance, ROUTE, WS_ROUTE))
                .isInstanceOf(UsageException.class).hasMessageStartingWith("--balance: ").hasMessageContaining(name);
    }

    @Test
    void readsTheBackendsOfARouteFromAFileOnePerLineWithComments(@TempDir Path dir) throws Exception {
        Path file = Files.writeString(dir.resolve("chat.backends"), String.join("\n",
                "\uFEFF# chat backends, one per line",
                "ws://10.0.0.1:3000;weight=3   # the big one",
                "",
                "  ws://10.0.0.2:3000  ",
                "ws://10.0.0.3:3000;backup\r",
                "# ws://10.0.0.4:3000 is out for repairs",
                ""));

        LauncherOptions options = LauncherOptions.parse(ROUTE, WS_ROUTE, ROUTE, "/chat/=@" + file);

        assertThat(options.routes().get("/chat/")).containsExactly(
                Backend.of("ws://10.0.0.1:3000").withWeight(3),
                Backend.of("ws://10.0.0.2:3000"),
                Backend.of("ws://10.0.0.3:3000").asBackup());
        assertThat(options.backendFiles()).containsExactly(entry("/chat/", file));
        assertThat(options.routes().keySet()).containsExactly("/ws/", "/chat/");
    }

    @Test
    void picksWeightedRoundRobinForAFileRouteWithoutWeightsSoThatAReloadCanBringThem(@TempDir Path dir)
            throws Exception {
        Path file = Files.writeString(dir.resolve("backends"), "ws://a:1\nws://b:1\n");

        assertThat(LauncherOptions.parse(ROUTE, "/ws/=@" + file).balance()).isEqualTo("weighted-round-robin");
        assertThat(LauncherOptions.parse(ROUTE, "/ws/=@" + file, "--balance", "round-robin").balance())
                .as("given, it stays; a weight a reload brings is then refused (checkWeights)")
                .isEqualTo("round-robin");
        assertThatThrownBy(() -> LauncherOptions.checkWeights("round-robin",
                List.of(Backend.of("ws://a:1"), Backend.of("ws://b:1").withWeight(2))))
                .isInstanceOf(UsageException.class)
                .hasMessageStartingWith("--balance: round-robin ignores weights, and --route gives ws://b:1;weight=2");
        LauncherOptions.checkWeights("least-connections", List.of(Backend.of("ws://b:1").withWeight(2)));
    }

    @Test
    void namesTheFileAndTheLineOfABadBackendInABackendFile(@TempDir Path dir) throws Exception {
        Path file = Files.writeString(dir.resolve("backends"), "ws://a:1\n# fine so far\nftp://b:21\n");
        assertUsageError(new String[] {ROUTE, "/ws/=@" + file}, "--route: " + file + " line 3: 'ftp://b:21': uri:"
                + " ftp://b:21 (expected: scheme ws, wss, http or https)");

        Files.writeString(file, "ws://a:1;weight=2000\n");
        assertUsageError(new String[] {ROUTE, "/ws/=@" + file}, "--route: " + file + " line 1: ';weight=2000'"
                + " (expected: ;weight=N (N from 1 to 1000)");

        Files.writeString(file, "ws://admin:s3cret@a:1\n");
        assertUsageError(new String[] {ROUTE, "/ws/=@" + file}, "--route: " + file + " line 1: 'ws://***@a:1'");
        assertThatThrownBy(() -> LauncherOptions.parse(ROUTE, "/ws/=@" + file)).message().doesNotContain("s3cret");

        Files.writeString(file, "ws://a:1\nws://a:1\n");
        assertUsageError(new String[] {ROUTE, "/ws/=@" + file}, "--route: " + file + ": backends: [ws://a:1, ws://a:1] (expected: each URI once");
    }

    @Test
    void refusesABinaryLineInABackendFileWithoutEchoingIt(@TempDir Path dir) throws Exception {
        // A key store or an archive named by mistake: its first line went to stderr twice, escape sequences included.
        Path file = dir.resolve("proxy.p12");
        byte[][] lines = {
            "ws://a:1\n".getBytes(UTF_8),
            {'w', 's', ':', '/', '/', 'b', ':', '1', 0x1b, '[', '2', 'J', 0, '\n'},
            {'w', 's', ':', '/', '/', 'c', (byte) 0xff, (byte) 0xfe, ':', '1', '\n'},
        };
        for (int n = 2; n <= 3; n++) {
            Files.write(file, concat(lines[0], lines[n - 1]));
            assertUsageError(new String[] {ROUTE, "/ws/=@" + file}, "--route: " + file + " line 2: not text (a"
                    + " control character or bytes that are not UTF-8; expected: one URL per line, like"
                    + " ws://10.0.0.5:3000;weight=2, # for a comment)");
        }
        Files.write(file, concat(lines[0], "ws://b:1\t;\tbackup\n".getBytes(UTF_8)));
        assertThat(LauncherOptions.parse(ROUTE, "/ws/=@" + file).routes().get("/ws/")).as("a tab is text")
                .containsExactly(Backend.of("ws://a:1"), Backend.of("ws://b:1").asBackup());
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] both = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, both, a.length, b.length);
        return both;
    }

    @Test
    void refusesABackendFileThatIsMissingEmptyADirectoryOrTooLarge(@TempDir Path dir) throws Exception {
        Path missing = dir.resolve("missing");
        assertUsageError(new String[] {ROUTE, "/ws/=@" + missing}, "--route: " + missing + ": no such file"
                + " (expected: one URL per line, like ws://10.0.0.5:3000;weight=2, # for a comment)");

        Path empty = Files.writeString(dir.resolve("empty"), "# nothing yet\n\n");
        assertUsageError(new String[] {ROUTE, "/ws/=@" + empty}, "--route: " + empty + ": no backend in it (expected:"
                + " one URL per line");

        assertUsageError(new String[] {ROUTE, "/ws/=@" + dir}, "--route: " + dir + ": not a regular file (a"
                + " directory, a pipe or a device; expected: a file of one URL per line");

        Path large = Files.write(dir.resolve("large"), new byte[LauncherOptions.MAX_BACKEND_FILE_BYTES + 1]);
        assertUsageError(new String[] {ROUTE, "/ws/=@" + large}, "--route: " + large + ": larger than 1 MiB");
    }

    @Test
    @Timeout(value = 10, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void refusesANamedPipeAsABackendFileRatherThanWaitForAWriter(@TempDir Path dir) throws Exception {
        // Read with no writer, it blocked for good: at the start SIGTERM could not end the launcher, and a reload held
        // the reload's lock, so every later SIGHUP waited behind it.
        Path fifo = dir.resolve("backends.fifo");
        Process mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
        assertThat(mkfifo.waitFor()).as("mkfifo's exit").isZero();

        assertUsageError(new String[] {ROUTE, "/ws/=@" + fifo}, "--route: " + fifo + ": not a regular file");
    }

    @Test
    void followsTheDnsNameOfARouteMarkedResolve() throws Exception {
        LauncherOptions options = LauncherOptions.parse(ROUTE, WS_ROUTE,
                ROUTE, "/chat/=ws://chat.default.svc.cluster.local:8080/rooms/ ;resolve", "--dns-refresh", "5s");

        assertThat(options.dnsRoutes()).containsExactly(
                entry("/chat/", Backend.of("ws://chat.default.svc.cluster.local:8080/rooms/")));
        assertThat(options.routes()).containsOnlyKeys("/ws/");
        assertThat(options.dnsRefresh()).isEqualTo(Duration.ofSeconds(5));
        assertThat(LauncherOptions.parse(ROUTE, "/chat/=ws://chat:8080;resolve").dnsRefresh())
                .isEqualTo(LauncherOptions.DEFAULT_DNS_REFRESH).isEqualTo(Duration.ofSeconds(10));
    }

    @Test
    void takesResolveSpacedAsTheOtherBackendOptionsAre() throws Exception {
        // ws://chat:8080 ; backup was taken, and ws://chat:8080 ; resolve refused as ";resolve (expected: ;resolve
        // alone, after a route's only URL ...)", which it was.
        assertThat(LauncherOptions.parse(ROUTE, "/chat/=ws://chat:8080 ; resolve ").dnsRoutes())
                .containsExactly(entry("/chat/", Backend.of("ws://chat:8080")));
        assertUsageError(new String[] {ROUTE, "/chat/=ws://chat:8080 ; weight=2 ; resolve"},
                "--route: '; weight=2 ; resolve' (expected: ;resolve alone");
    }

    @Test
    void saysThatResolveGoesOnTheCommandLineNotInABackendFile(@TempDir Path dir) throws Exception {
        // A line with only a URL and ;resolve was told "expected: ;resolve alone, after a route's only URL".
        Path file = Files.writeString(dir.resolve("backends"), "# chat\nws://chat:8080;resolve\n");

        assertUsageError(new String[] {ROUTE, "/chat/=@" + file}, "--route: " + file + " line 2: ';resolve' in a"
                + " backend file (expected: one URL per line, like ws://10.0.0.5:3000;weight=2, # for a comment;"
                + " ;resolve only on the command line, --route PATH=URL;resolve)");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "/ws/=ws://a:1;resolve,ws://b:1         | --route: ';resolve' (expected: ;resolve alone, after a route's only URL",
        "/ws/=ws://a:1;weight=2;resolve         | --route: ';weight=2;resolve' (expected: ;resolve alone",
        "/ws/=ws://a:1;backup;resolve           | --route: ';backup;resolve' (expected: ;resolve alone",
        "/ws/=ws://a:1;resolve;resolve          | --route: ';resolve' (expected: ;resolve alone",
        "/ws/=ws://a:1?x=1;resolve              | --route: 'ws://a:1?x=1': uri: ws://a:1?x=1 (expected: no query",
    })
    void refusesResolveWhereItCannotGo(String route, String message) {
        assertUsageError(new String[] {ROUTE, route.strip()}, message.strip());
    }

    @Test
    void refusesADnsRefreshOfZeroOrWithoutARouteToRefresh() {
        assertUsageError(new String[] {ROUTE, "/ws/=ws://a:1;resolve", "--dns-refresh", "0"},
                "--dns-refresh: '0' (expected: a duration like 500ms, 5s, 2m or 1h, more than 0)");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--dns-refresh", "5s"},
                "--dns-refresh: given without a --route PATH=URL;resolve");
        assertUsageError(new String[] {ROUTE, "/ws/=ws://a:1;resolve", ROUTE, WS_ROUTE},
                "--route: /ws/ routed twice");
    }

    @Test
    void passesCompressionThroughOnlyWhenAsked() throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE).compressionPassThrough()).isFalse();
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--compression-pass-through").compressionPassThrough())
                .isTrue();
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--compression-pass-through=yes"},
                "--compression-pass-through: takes no value (expected: --compression-pass-through alone)");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--compression-pass-through", "--compression-pass-through"},
                "--compression-pass-through: given twice (expected: once)");
    }

    @Test
    void reusesThePortOnlyWhenAsked() throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE).reusePort()).isFalse();
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--reuse-port").reusePort()).isTrue();
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--reuse-port", "--reuse-port"},
                "--reuse-port: given twice (expected: once)");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--reuse-port=true"},
                "--reuse-port: takes no value (expected: --reuse-port alone)");
    }

    @Test
    void readsWeightAndBackupAfterABackendUrl() throws Exception {
        LauncherOptions options = LauncherOptions.parse(ROUTE,
                "/ws/=ws://a:1;weight=3,ws://b:1;backup, ws://c:1 ; backup ; weight=1000 ,ws://d:1;weight=1");

        assertThat(options.routes().get("/ws/")).containsExactly(
                Backend.of("ws://a:1").withWeight(3),
                Backend.of("ws://b:1").asBackup(),
                Backend.of("ws://c:1").withWeight(1000).asBackup(),
                Backend.of("ws://d:1"));
        assertThat(options.routes().get("/ws/")).extracting(Backend::weight).containsExactly(3, 1, 1000, 1);
        assertThat(options.routes().get("/ws/")).extracting(Backend::isBackup)
                .containsExactly(false, true, true, false);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "/ws/=ws://a:1;weight=0          | ;weight=0",
        "/ws/=ws://a:1;weight=1001       | ;weight=1001",
        "/ws/=ws://a:1;weight=-1         | ;weight=-1",
        "/ws/=ws://a:1;weight=           | ;weight=",
        "/ws/=ws://a:1;weight=2x         | ;weight=2x",
        "/ws/=ws://a:1;weight=99999      | ;weight=99999",
        "/ws/=ws://a:1;backup;backup     | ;backup",
        "/ws/=ws://a:1;weight=2;weight=3 | ;weight=3",
        "/ws/=ws://a:1;primary           | ;primary",
        "/ws/=ws://a:1;                  | ;",
        "/ws/=ws://a:1;Weight=2          | ;Weight=2",
    })
    void rejectsMalformedBackendOptions(String route, String part) {
        assertUsageError(new String[] {ROUTE, route.strip()}, "--route: '" + part.strip()
                + "' (expected: ;weight=N (N from 1 to 1000) or ;backup after a URL, each once)");
    }

    @Test
    void rejectsOptionsWithoutAUrl() {
        assertUsageError(new String[] {ROUTE, "/ws/=;weight=2"},
                "--route: '' (expected: a ws://, wss://, http:// or https:// URL with a host, like ws://127.0.0.1:3000)");
    }

    @Test
    void collectsAllowedOrigins() throws Exception {
        LauncherOptions options = LauncherOptions.parse(ROUTE, WS_ROUTE,
                "--allow-origin", "https://app.example.com", "--allow-origin", "http://localhost:3000");

        assertThat(options.allowedOrigins()).containsExactly("https://app.example.com", "http://localhost:3000");
    }

    @ParameterizedTest
    @ValueSource(strings = {"app.example.com", "https://app.example.com/path", "null", "https://"})
    void rejectsMalformedOrigins(String origin) {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--allow-origin", origin},
                "--allow-origin: '" + origin + "' (expected: scheme://host[:port], like https://app.example.com)");
    }

    @ParameterizedTest
    @CsvSource({"500ms, PT0.5S", "5s, PT5S", "2m, PT2M", "1h, PT1H", "0, PT0S", "90s, PT1M30S"})
    void parsesDurations(String value, Duration expected) throws Exception {
        assertThat(LauncherOptions.parseDuration("--idle-timeout", value)).isEqualTo(expected);
    }

    @ParameterizedTest
    @ValueSource(strings = {"5", "5 s", "5S", "1.5s", "-1s", "s", "PT5S", "5d", "ms"})
    void rejectsMalformedDurations(String value) {
        assertThatThrownBy(() -> LauncherOptions.parseDuration("--idle-timeout", value))
                .isInstanceOf(UsageException.class)
                .hasMessage("--idle-timeout: '" + value + "' (expected: a duration like 500ms, 5s, 2m or 1h)");
    }

    @Test
    void setsTimeouts() throws Exception {
        LauncherOptions options = LauncherOptions.parse(ROUTE, WS_ROUTE,
                "--connect-timeout", "500ms", "--idle-timeout", "2m", "--ping-interval", "30s");

        assertThat(options.connectTimeout()).isEqualTo(Duration.ofMillis(500));
        assertThat(options.idleTimeout()).isEqualTo(Duration.ofMinutes(2));
        assertThat(options.pingInterval()).isEqualTo(Duration.ofSeconds(30));
        assertThat(options.toProxyBuilder()).isNotNull();
    }

    @Test
    void refusesAPingIntervalNotShorterThanTheIdleTimeout() throws Exception {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--idle-timeout", "1m", "--ping-interval", "1m"},
                "--ping-interval: 1m (expected: shorter than --idle-timeout 1m, or 0)");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--ping-interval", "2h"},
                "--ping-interval: 2h (expected: shorter than --idle-timeout 1h, or 0)");
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--idle-timeout", "0", "--ping-interval", "2h")
                .pingInterval()).as("with no idle timeout").isEqualTo(Duration.ofHours(2));
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--ping-interval", "0").pingInterval()).isZero();
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--ping-interval", "50ms"},
                "--ping-interval: '50ms' (expected: at least 100ms, or 0)");
    }

    @Test
    void idleTimeoutZeroDisablesItButConnectTimeoutZeroIsAnError() throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--idle-timeout", "0").idleTimeout()).isZero();
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--connect-timeout", "0"},
                "--connect-timeout: '0' (expected: a duration like 500ms, 5s, 2m or 1h, more than 0)");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--idle-timeout", "10"},
                "--idle-timeout: '10' (expected: a duration like 500ms, 5s, 2m or 1h)");
    }

    @ParameterizedTest
    @CsvSource({"1, 1", "65536, 65536", "64k, 65536", "64K, 65536", "16m, 16777216", "1M, 1048576"})
    void parsesSizes(String value, long expected) throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--max-message-size", value).maxMessageSize())
                .isEqualTo(expected);
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "0k", "-1", "64kb", "1g", "1.5m", "k", "999999999999999999m", "64 k"})
    void rejectsMalformedSizes(String value) {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--max-message-size", value}, "--max-message-size: '"
                + value + "' (expected: a positive number of bytes, like 65536, 64k or 16m)");
    }

    @ParameterizedTest
    @ValueSource(strings = {"10.0.0.0/8", "192.168.1.7", "192.168.1.7/32", "0.0.0.0/0", "fd00::/8", "::1", "::/0",
        "::ffff:10.0.0.1"})
    void acceptsTrustedProxyBlocks(String cidr) throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--trusted-proxy", cidr).trustedProxies())
                .containsExactly(cidr);
    }

    @Test
    void collectsRepeatedTrustedProxiesInOrder() throws Exception {
        LauncherOptions options = LauncherOptions.parse(ROUTE, WS_ROUTE, "--trusted-proxy", "10.0.0.0/8",
                "--trusted-proxy=192.168.1.7", "--trusted-proxy", " fd00::/8 ");

        assertThat(options.trustedProxies()).containsExactly("10.0.0.0/8", "192.168.1.7", "fd00::/8");
    }

    @ParameterizedTest
    @ValueSource(strings = {"proxy.internal", "localhost", "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/x",
        "10.0.0.0/-1", "10.0.0.0/8,172.16.0.0/12", "-1", "1:2:3"})
    void rejectsMalformedTrustedProxies(String cidr) {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--trusted-proxy", cidr}, "--trusted-proxy: '" + cidr
                + "' (expected: an IP address or block, like 10.0.0.0/8, 192.168.1.7 or fd00::/8)");
    }

    @ParameterizedTest
    @CsvSource({"1, 1", "100, 100", "2147483647, 2147483647", "007, 7"})
    void parsesSessionLimits(String value, int expected) throws Exception {
        LauncherOptions options = LauncherOptions.parse(ROUTE, WS_ROUTE,
                "--max-connections-per-ip", value, "--max-connections=" + value);

        assertThat(options.maxConnectionsPerIp()).isEqualTo(OptionalInt.of(expected));
        assertThat(options.maxConnections()).isEqualTo(OptionalInt.of(expected));
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "-1", "1.5", "ten", "2147483648", "99999999999", "10/s", "+5", "5 "})
    void rejectsMalformedSessionLimits(String value) {
        for (String flag : List.of("--max-connections-per-ip", "--max-connections")) {
            assertUsageError(new String[] {ROUTE, WS_ROUTE, flag, value},
                    flag + ": '" + value + "' (expected: a whole number of sessions, at least 1, like 100)");
        }
    }

    @ParameterizedTest
    @CsvSource({"10/s, 10", "10, 10", "1/s, 1", "1, 1", "2147483647/s, 2147483647"})
    void parsesHandshakeRates(String value, int expected) throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--handshake-rate-per-ip", value).handshakeRatePerIp())
                .isEqualTo(OptionalInt.of(expected));
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "0/s", "-1", "-5/s", "5/m", "5/h", "5/S", "5/sec", "5 /s", "5/", "/s", "1.5/s",
        "2147483648/s", "five/s", "5/s/s"})
    void rejectsMalformedHandshakeRates(String value) {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--handshake-rate-per-ip", value},
                "--handshake-rate-per-ip: '" + value
                        + "' (expected: handshakes per second, at least 1, like 10/s or 10)");
    }

    @ParameterizedTest
    @CsvSource({"64, 64", "1, 1", "48, 48", "56, 56", "128, 128", "0128, 128"})
    void parsesPerIpIpv6Prefixes(String value, int expected) throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--per-ip-ipv6-prefix", value).perIpIpv6Prefix())
                .isEqualTo(expected);
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--per-ip-ipv6-prefix=" + value).toProxyBuilder().build())
                .isNotNull();
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "129", "-1", "-64", "64.5", "/64", "sixty-four", "2147483648", "+64", "64 ", "ff"})
    void rejectsMalformedPerIpIpv6Prefixes(String value) {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--per-ip-ipv6-prefix", value}, "--per-ip-ipv6-prefix: '"
                + value + "' (expected: a prefix length in bits, 1 to 128, like 64, 56 or 128)");
    }

    @ParameterizedTest
    @CsvSource({"5s, PT5S", "500ms, PT0.5S", "2m, PT2M", "0, PT0S", "0s, PT0S"})
    void parsesHandshakeTimeouts(String value, Duration expected) throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--handshake-timeout", value).handshakeTimeout())
                .isEqualTo(expected);
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--handshake-timeout=" + value).toProxyBuilder().build())
                .isNotNull();
    }

    @ParameterizedTest
    @ValueSource(strings = {"soon", "-1s", "5", "1.5s", "5 s", "5sec", "10d"})
    void rejectsMalformedHandshakeTimeouts(String value) {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--handshake-timeout", value}, "--handshake-timeout: '"
                + value + "' (expected: a duration like 500ms, 5s, 2m or 1h)");
    }

    @ParameterizedTest
    @CsvSource({"1, 1", "4096, 4096", "2147483647, 2147483647"})
    void parsesMaxPendingHandshakes(String value, int expected) throws Exception {
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE, "--max-pending-handshakes", value).maxPendingHandshakes())
                .isEqualTo(expected);
    }

    @ParameterizedTest
    @ValueSource(strings = {"0", "-1", "1.5", "many", "2147483648", "10/s", "+5"})
    void rejectsMalformedMaxPendingHandshakes(String value) {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--max-pending-handshakes", value},
                "--max-pending-handshakes: '" + value
                        + "' (expected: a whole number of connections, at least 1, like 4096)");
    }

    @Test
    void rejectsLimitsAndTrustedProxiesWithoutAValue() {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--trusted-proxy"}, "--trusted-proxy: missing value"
                + " (expected: an IP address or block, like 10.0.0.0/8, 192.168.1.7 or fd00::/8)");
        assertUsageError(new String[] {"--max-connections-per-ip", ROUTE, WS_ROUTE},
                "--max-connections-per-ip: missing value (expected: a whole number of sessions, at least 1, like 100)");
        assertUsageError(new String[] {"--max-connections=", ROUTE, WS_ROUTE}, "--max-connections: missing value");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--handshake-rate-per-ip"},
                "--handshake-rate-per-ip: missing value (expected: handshakes per second, at least 1, like 10/s or 10)");
        assertUsageError(new String[] {"--handshake-timeout", ROUTE, WS_ROUTE},
                "--handshake-timeout: missing value (expected: a duration like 500ms, 5s, 2m or 1h; 0 disables)");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--max-pending-handshakes="},
                "--max-pending-handshakes: missing value (expected: a whole number of connections, at least 1,");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--per-ip-ipv6-prefix"},
                "--per-ip-ipv6-prefix: missing value (expected: a prefix length in bits, 1 to 128, like 64, 56 or 128)");
    }

    @ParameterizedTest
    @CsvSource({"--max-connections-per-ip, 5", "--max-connections, 5", "--handshake-rate-per-ip, 5/s",
        "--handshake-timeout, 5s", "--max-pending-handshakes, 5", "--per-ip-ipv6-prefix, 56"})
    void rejectsLimitsGivenTwice(String flag, String value) {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, flag, value, flag, value},
                flag + ": given twice (expected: once)");
    }

    @Test
    void rejectsUnknownFlagsAndStrayArguments() {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--port", "80"}, "unknown flag --port (expected: see --help)");
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "extra"},
                "unexpected argument 'extra' (expected: a flag like --route)");
    }

    @Test
    void rejectsMissingValues() {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--listen"},
                "--listen: missing value (expected: HOST:PORT, like 127.0.0.1:8080, 0.0.0.0:0 or [::1]:8080)");
        assertUsageError(new String[] {"--idle-timeout", ROUTE, WS_ROUTE},
                "--idle-timeout: missing value (expected: a duration like 500ms, 5s, 2m or 1h; 0 disables)");
        assertUsageError(new String[] {"--max-message-size=", ROUTE, WS_ROUTE}, "--max-message-size: missing value");
    }

    @Test
    void rejectsSingleValueFlagsGivenTwice() {
        assertUsageError(new String[] {ROUTE, WS_ROUTE, "--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2"},
                "--listen: given twice (expected: once)");
    }

    @Test
    void buildsAProxyWithTheOptions() throws Exception {
        LauncherOptions options = LauncherOptions.parse("--listen", "127.0.0.1:0", ROUTE, WS_ROUTE,
                "--allow-origin", "https://app.example.com", "--idle-timeout", "0", "--max-message-size", "1k");

        // build() accepts the combination; the proxy is not started.
        assertThat(options.toProxyBuilder().build()).isNotNull();
        LauncherOptions limited = LauncherOptions.parse("--listen", "127.0.0.1:0", ROUTE, WS_ROUTE,
                "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1", "--max-connections-per-ip", "2",
                "--max-connections", "1000", "--handshake-rate-per-ip", "5/s", "--handshake-timeout", "5s",
                "--max-pending-handshakes", "100", "--per-ip-ipv6-prefix", "56");
        assertThat(limited.toProxyBuilder().build()).isNotNull();
        LauncherOptions balanced = LauncherOptions.parse("--listen", "127.0.0.1:0", "--balance", "hash:cookie:sid",
                ROUTE, "/ws/=ws://127.0.0.1:3000;weight=2,ws://127.0.0.1:3001;backup");
        assertThat(balanced.toProxyBuilder().build().backendStatus("/ws/")).extracting(BackendStatus::backend)
                .containsExactly(Backend.of("ws://127.0.0.1:3000").withWeight(2),
                        Backend.of("ws://127.0.0.1:3001").asBackup());
        assertThatThrownBy(() -> LauncherOptions.parse("--help").toProxyBuilder())
                .isInstanceOf(IllegalStateException.class);
    }

    @Test
    void readsTlsPasswordsFromTheEnvironmentVariablesNamed() throws Exception {
        LauncherOptions options = LauncherOptions.parse(Map.of("PROXY_PW", "front-secret", "TRUST_PW", "t",
                        "CLIENT_PW", "c"), ROUTE, WS_ROUTE,
                "--tls-keystore", "/etc/wsproxy/proxy.p12", "--tls-password-env", "PROXY_PW",
                "--backend-truststore", "/etc/wsproxy/ca.p12", "--backend-truststore-password-env", "TRUST_PW",
                "--backend-keystore", "/etc/wsproxy/client.p12", "--backend-keystore-password-env", "CLIENT_PW");

        assertThat(options.tlsKeyStore()).isEqualTo(
                new LauncherOptions.Secured(Path.of("/etc/wsproxy/proxy.p12"), "front-secret"));
        assertThat(options.backendTrustStore()).isEqualTo(
                new LauncherOptions.Secured(Path.of("/etc/wsproxy/ca.p12"), "t"));
        assertThat(options.backendKeyStore()).isEqualTo(
                new LauncherOptions.Secured(Path.of("/etc/wsproxy/client.p12"), "c"));
        assertThat(options.tlsKeyStore().toString()).doesNotContain("front-secret");
        assertThat(options.insecureBackendTls()).isFalse();
        LauncherOptions plain = LauncherOptions.parse(Map.of(), ROUTE, WS_ROUTE);
        assertThat(plain.tlsKeyStore()).isNull();
        assertThat(plain.backendTrustStore()).isNull();
        assertThat(plain.backendKeyStore()).isNull();
        LauncherOptions pemTrust = LauncherOptions.parse(Map.of(), ROUTE, WS_ROUTE, "--backend-truststore", "ca.pem");
        assertThat(pemTrust.backendTrustStore()).isEqualTo(new LauncherOptions.Secured(Path.of("ca.pem"), null));
    }

    @Test
    void insecureBackendTlsTakesNoValueAndExcludesVerificationFlags() throws Exception {
        assertThat(LauncherOptions.parse(Map.of(), "--insecure-backend-tls", ROUTE, WS_ROUTE).insecureBackendTls())
                .isTrue();
        // It was "unknown flag --insecure-backend-tls", naming a flag that exists.
        assertUsageError(Map.of(), new String[] {"--insecure-backend-tls=yes", ROUTE, WS_ROUTE},
                "--insecure-backend-tls: takes no value (expected: --insecure-backend-tls alone)");
        assertUsageError(Map.of(), new String[] {"--insecure-backend-tls", "--insecure-backend-tls", ROUTE, WS_ROUTE},
                "--insecure-backend-tls: given twice");
        assertUsageError(Map.of(), new String[] {"--insecure-backend-tls", "--backend-truststore", "ca.pem", ROUTE,
                WS_ROUTE}, "--insecure-backend-tls: given with --backend-truststore (expected: one or the other)");
    }

    @Test
    void rejectsIncompleteTlsFlagsAndUnsetPasswordVariables() {
        Map<String, String> env = Map.of("PW", "secret");
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--tls-keystore", "p.p12"},
                "--tls-keystore: given without --tls-password-env (expected: both)");
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--tls-password-env", "PW"},
                "--tls-password-env: given without --tls-keystore (expected: both)");
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--tls-keystore", "p.p12", "--tls-password-env", "NOPE"},
                "--tls-password-env: the environment variable NOPE is not set (expected: the password in it)");
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--tls-keystore", "p.p12", "--tls-password-env",
                "secret value"}, "--tls-password-env: 'secret value' (expected: the name of an environment variable");
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--backend-keystore", "c.p12"},
                "--backend-keystore: given without --backend-keystore-password-env (expected: both)");
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--backend-truststore-password-env", "PW"},
                "--backend-truststore-password-env: given without --backend-truststore");
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--tls-keystore", "a", "--tls-keystore", "b",
                "--tls-password-env", "PW"}, "--tls-keystore: given twice");
    }

    @Test
    void takesTheClientCaWithTheKeyStoreAndRequiresNoneWithoutIt() throws Exception {
        Map<String, String> env = Map.of("PW", "secret");
        LauncherOptions options = LauncherOptions.parse(env, ROUTE, WS_ROUTE, "--tls-keystore", "proxy.p12",
                "--tls-password-env", "PW", "--tls-client-ca", "/etc/wsproxy/client-ca.pem");
        assertThat(options.tlsClientCa()).isEqualTo(Path.of("/etc/wsproxy/client-ca.pem"));
        assertThat(LauncherOptions.parse(env, ROUTE, WS_ROUTE, "--tls-client-ca=ca.pem", "--tls-keystore=proxy.p12",
                "--tls-password-env=PW").tlsClientCa()).as("after =, before --tls-keystore")
                .isEqualTo(Path.of("ca.pem"));
        assertThat(LauncherOptions.parse(env, ROUTE, WS_ROUTE, "--tls-keystore", "proxy.p12", "--tls-password-env",
                "PW").tlsClientCa()).as("the default: no client certificate asked for").isNull();
        assertThat(LauncherOptions.parse(ROUTE, WS_ROUTE).tlsClientCa()).isNull();
    }

    @Test
    void rejectsAClientCaWithoutTheKeyStoreGivenTwiceOrWithoutAValue() {
        Map<String, String> env = Map.of("PW", "secret");
        // Plain ws:// has no TLS handshake to ask for a certificate in: the flag would require nothing.
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--tls-client-ca", "ca.pem"},
                "--tls-client-ca: given without --tls-keystore");
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--tls-keystore", "p.p12", "--tls-password-env", "PW",
                "--tls-client-ca", "a.pem", "--tls-client-ca", "b.pem"},
                "--tls-client-ca: given twice (expected: once)");
        assertUsageError(env, new String[] {ROUTE, WS_ROUTE, "--tls-keystore", "p.p12", "--tls-password-env", "PW",
                "--tls-client-ca"}, "--tls-client-ca: missing value (expected: a file path, like ");
        assertUsageError(env, new String[] {"--tls-client-ca=", ROUTE, WS_ROUTE, "--tls-keystore", "p.p12",
                "--tls-password-env", "PW"}, "--tls-client-ca: missing value (expected: a file path, like ");
        assertUsageError(env, new String[] {"--tls-client-ca", "--tls-keystore", "p.p12", "--tls-password-env", "PW",
                ROUTE, WS_ROUTE}, "--tls-client-ca: missing value");
    }

    @Test
    void takesAnEmptyPasswordVariableAsAnEmptyPassword() throws Exception {
        LauncherOptions options = LauncherOptions.parse(Map.of("EMPTY", ""), ROUTE, WS_ROUTE,
                "--tls-keystore", "proxy.p12", "--tls-password-env", "EMPTY",
                "--backend-truststore", "ca.p12", "--backend-truststore-password-env", "EMPTY",
                "--backend-keystore", "client.p12", "--backend-keystore-password-env", "EMPTY");

        assertThat(options.tlsKeyStore()).isEqualTo(new LauncherOptions.Secured(Path.of("proxy.p12"), ""));
        assertThat(options.backendTrustStore()).isEqualTo(new LauncherOptions.Secured(Path.of("ca.p12"), ""));
        assertThat(options.backendKeyStore()).isEqualTo(new LauncherOptions.Secured(Path.of("client.p12"), ""));
    }

    @Test
    void namesTheFlagWhenAStoreCannotBeRead(@TempDir Path dir) throws Exception {
        Path missing = dir.resolve("missing.p12");
        LauncherOptions options = LauncherOptions.parse(Map.of("PW", "secret"), ROUTE, WS_ROUTE,
                "--tls-keystore", missing.toString(), "--tls-password-env", "PW");
        assertThatThrownBy(options::toProxyBuilder).isInstanceOf(UsageException.class)
                .hasMessageStartingWith("--tls-keystore: keyStore: " + missing).hasMessageNotContaining("secret");
        LauncherOptions trust = LauncherOptions.parse(Map.of(), ROUTE, WS_ROUTE,
                "--backend-truststore", missing.toString());
        assertThatThrownBy(trust::toProxyBuilder).isInstanceOf(UsageException.class)
                .hasMessageStartingWith("--backend-truststore: trustStore: " + missing);
    }

    @ParameterizedTest
    @CsvSource({"PT10S, 10s", "PT1H, 1h", "PT2M, 2m", "PT0.5S, 500ms", "PT0S, 0", "PT1M30S, 90s"})
    void formatsDurationsInTheFlagForm(Duration duration, String expected) {
        assertThat(LauncherOptions.format(duration)).isEqualTo(expected);
    }

    private static void assertUsageError(Map<String, String> env, String[] args, String messageStart) {
        assertThatThrownBy(() -> LauncherOptions.parse(env, args))
                .isInstanceOf(UsageException.class)
                .message().startsWith(messageStart).doesNotContain("\n");
    }

    private static void assertUsageError(String[] args, String messageStart) {
        assertThatThrownBy(() -> LauncherOptions.parse(args))
                .isInstanceOf(UsageException.class)
                .message().startsWith(messageStart).doesNotContain("\n");
    }
}
