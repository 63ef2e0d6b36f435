package dev.wsproxy;

import static dev.wsproxy.RawFrames.bytes;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import dev.wsproxy.RawHttp.Request;

/**
 * What the proxy logs while hostile and faulty inputs are thrown at it: the hostile-input matrix's log assertions (no
 * stack trace for expected faults, no ERROR, one access-log line per session, {@code Cookie} and {@code Authorization}
 * never logged) and what docs/configuration.md and docs/security.md promise (a backend failure is one WARN line
 * without a stack trace; the access log has no payloads, headers, cookies or query strings; requests are logged with
 * their path only). The proxy runs in a forked JVM ({@link ForkedProxy}) whose standard error, where slf4j-simple
 * writes, goes to a file: the log holds the proxy's lines only, and is read once the proxy has stopped.
 *
 * <p>Each input is checked for the answer it must get, so that it really happened: malformed handshakes (400), bad
 * versions (426), what Jetty refuses before the proxy runs (oversized headers: 431, a duplicate or a bad {@code Host},
 * an ambiguous target, an unreadable request line: 400, a target too long: 414), plain HTTP on a route that passes it
 * to a next handler when there is none (404), a refused backend (502, also for plain HTTP), a silent backend (504), a
 * client gone while its backend handshake is pending, a backend's own refusal (401), sessions that end cleanly from
 * either side, a client reset and a client half-close, a backend that drops its connection (1014), invalid frames
 * (1002, 1007, 1009), data after a close, a close inside a fragmented message, slowloris sockets (one the client
 * closes in the middle of its head: 400, two the proxy closes at the handshake deadline: 408 for the one that sent
 * part of a head, no line for the one that sent nothing), a session open while the proxy stops, and plain HTTP.
 * Requests carry secrets in {@code Authorization}, in a {@code Cookie} and in a {@code token=} query parameter, and
 * messages one in their payload.
 *
 * <p>At INFO, every line must be a log record (no stack trace, nothing printed past the logger), none at ERROR, and
 * none naming an exception class but the refused backend's WARN, which ends with its cause as documented
 * ({@code backend unreachable: java.net.ConnectException: Connection refused}, a class name in one line, not a stack
 * trace). At DEBUG a stack trace may follow a DEBUG record only. At both, none of the secrets appears, and the access
 * log has one line per session in the documented format with the close codes, the initiator and the proxy's close
 * each session must show, and one per request without a session with its status and reason, Jetty's own refusals and
 * its 404 included. The JVM's own warnings ({@code WARNING: ...}, as JDK 26 prints once for the final fields
 * {@code Masking} sets) are not the proxy's records and are left out.
 */
class LogHygieneTest {

    private static final String BEARER = "sk-live-4f1d9c0a7be25e31";
    private static final String COOKIE = "sess-7c1e22d94fa0b6d8";
    private static final String TOKEN = "tok-93b0a7e1c55d2f40";
    private static final String PAYLOAD = "payload-5be1f0c3a8e97d21";
    private static final List<String> SECRETS = List.of(BEARER, COOKIE, TOKEN, PAYLOAD);

    /** A line of slf4j-simple: {@code [thread] LEVEL logger - message}. */
    private static final Pattern RECORD = Pattern.compile(
            "^\\[[^\\]]*\\] (TRACE|DEBUG|INFO|WARN|ERROR) ([\\w.$]+) - (.*)$");
    /** docs/configuration.md's access-log line, for a session of this test. */
    private static final Pattern ACCESS = Pattern.compile("sid=[0-9a-f]+ client=127\\.0\\.0\\.1 route=/ "
            + "backend=ws://127\\.0\\.0\\.1:\\d+ duration_ms=\\d+ c2b_bytes=\\d+ c2b_msgs=\\d+ b2c_bytes=\\d+ "
            + "b2c_msgs=\\d+ client_close=(\\d+) backend_close=(\\d+) first=(client|backend|proxy) status=101 "
            + "proxy_close=(\\d+|-) reason=([a-z0-9_]+|-)");
    /**
     * docs/configuration.md's access-log line for a request of this test without a session: refused (by the proxy on a
     * route, or by Jetty before any route: {@code route=-}, and {@code method=-} when the request line was unreadable),
     * or plain HTTP (with its bytes); the route, backend, bytes, status and reason as groups.
     */
    private static final Pattern REQUEST = Pattern.compile("sid=- client=127\\.0\\.0\\.1 route=(-|/|/\\w+/) "
            + "backend=(-|ws://127\\.0\\.0\\.1:\\d+) duration_ms=\\d+ (?:c2b_bytes=(\\d+) b2c_bytes=(\\d+) )?"
            + "method=(?:[A-Z]+|-) status=(\\d{3}) reason=([a-z0-9_]+|-)");
    /** A class name of an exception or error, as a stack trace or a cause's {@code toString()} shows it. */
    private static final Pattern THROWABLE = Pattern.compile("\\b[\\w$]+(Exception|Error)\\b");
    /** The one WARN that names an exception: a refused backend connection, documented as one WARN line. */
    private static final Pattern REFUSED_WARN = Pattern.compile("Backend ws://127\\.0\\.0\\.1:\\d+ failed for GET "
            + "/refused/(s\\d+|plain) from 127\\.0\\.0\\.1: backend unreachable: java\\.net\\.ConnectException: "
            + "Connection refused");
    private static final Pattern SILENT_WARN = Pattern.compile("WARN Backend ws://127\\.0\\.0\\.1:\\d+ failed for GET "
            + "/silent/s from 127\\.0\\.0\\.1: backend did not complete the handshake in time");

    @TempDir
    Path dir;

    private TestBackend backend;
    private RawBackend silent;
    private String closed;
    private ForkedProxy proxy;
    private Clients clients;
    private WsRecorder open;
    /** The requests without a session thrown at the proxy so far, as their access lines must show them. */
    private final List<String> requests = new ArrayList<>();

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("b1");
        silent = RawBackend.answering(RawBackend.silent());
        closed = "ws://127.0.0.1:" + Clients.closedPort();
        clients = new Clients();
    }

    @AfterEach
    void stop() throws Exception {
        try {
            if (proxy != null) {
                proxy.close();
            }
        } finally {
            clients.close();
            silent.close();
            backend.close();
        }
    }

    private Path fork(String level, String... jvmOptions) throws IOException {
        Path log = dir.resolve("proxy-" + level + ".log");
        List<String> options = new ArrayList<>(List.of(
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                "-Dorg.slf4j.simpleLogger.log.dev.wsproxy=" + level,
                "-Dorg.slf4j.simpleLogger.log.dev.wsproxy.access=info"));
        options.addAll(List.of(jvmOptions));
        proxy = ForkedProxy.start(backend.uri(), log, options,
                "route=/refused/=" + closed,
                "route=/silent/=" + silent.uri(),
                "connectTimeout=PT1S",
                "handshakeTimeout=PT1S",
                "trustedProxies=127.0.0.1/32",
                "originRoute=/origin/",
                "authRoute=/auth/",
                "nextHandlerRoute=/pages/");
        return log;
    }

    @Test
    void logsNoErrorNoStackTraceAndNoSecretAndOneAccessLineForEachSession() throws Exception {
        Path file = fork("info");
        List<String> sessions = throwEverythingAt();
        List<Line> log = stopAndRead(file);

        assertThat(log).as("the proxy's log").isNotEmpty();
        assertThat(log).filteredOn(line -> line.level() == null)
                .as("lines that are not log records: stack traces, or anything printed past the logger").isEmpty();
        assertNoErrorAndNoSecret(log);
        assertThat(log).extracting(Line::level).as("levels").containsOnly("INFO", "WARN");
        assertThat(log).filteredOn(line -> THROWABLE.matcher(line.text()).find()
                        && !REFUSED_WARN.matcher(line.message()).matches())
                .as("records naming an exception, other than the refused backend's WARN").isEmpty();
        assertThat(log).filteredOn(line -> REFUSED_WARN.matcher(line.message()).matches())
                .as("the refused backend's WARN, path only, one per refused handshake and plain request").hasSize(3)
                .allSatisfy(line -> assertThat(line.level()).isEqualTo("WARN"));
        assertThat(log).filteredOn(line -> line.message().contains("/silent/s "))
                .as("the silent backend's WARN").singleElement()
                .satisfies(line -> assertThat(line.level() + " " + line.message()).matches(SILENT_WARN));
        assertAccessLines(log, sessions);
    }

    @Test
    void logsNoErrorAndNoSecretAtDebugEither() throws Exception {
        Path file = fork("debug");
        List<String> sessions = throwEverythingAt();
        List<Line> log = stopAndRead(file);

        assertThat(log).filteredOn(line -> "DEBUG".equals(line.level()))
                .as("the per-session detail of DEBUG").isNotEmpty();
        assertNoErrorAndNoSecret(log);
        // A stack trace may follow a DEBUG record (the detail of a leg's error), never a record above DEBUG.
        String level = null;
        for (Line line : log) {
            if (line.level() != null) {
                level = line.level();
            } else {
                assertThat(level).as("the record a stack trace line belongs to: %s", line.text()).isEqualTo("DEBUG");
            }
        }
        assertAccessLines(log, sessions);
    }

    @Test
    void writesTheAccessLogAsDocumentedWhateverTheDefaultLocale() throws Exception {
        // In Turkish, "CLIENT".toLowerCase() is "clıent" (a dotless i): the initiator broke the documented format.
        Path file = fork("info", "-Duser.language=tr", "-Duser.country=TR");
        List<String> sessions = new ArrayList<>(sessionsThatEndCleanly());
        sessions.addAll(aSessionOpenWhileTheProxyStops());
        List<Line> log = stopAndRead(file);

        assertNoErrorAndNoSecret(log);
        assertAccessLines(log, sessions);
    }

    @Test
    void namesAnIpv6ClientInTheAccessLogAsTheForwardedHeadersDo() throws Exception {
        // The access log wrote InetSocketAddress's long form (2001:db8:0:0:0:0:0:7), X-Real-IP the RFC 5952 one.
        Path file = fork("info");
        try (RawHttp client = connect()) {
            RawHttp.Response response = client.exchange(upgrade("/ws/v6").add("X-Forwarded-For", "2001:DB8:0:0::7"));
            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        List<Line> log = stopAndRead(file);

        assertThat(log).filteredOn(line -> "dev.wsproxy.access".equals(line.logger())).singleElement()
                .satisfies(line -> assertThat(line.message()).contains(" client=2001:db8::7 route=/ "));
    }

    @Test
    void writesOneAccessLineForEachRequestOnARouteRefusedFailedOrForwarded() throws Exception {
        // Only sessions had an access line: a refused origin, an authenticator's refusal (token guessing), a client
        // gone during the backend handshake, a backend failure and every plain HTTP request left nothing at INFO.
        Path file = fork("info");
        assertThat(exchange(upgrade("/origin/s").add("Origin", "https://evil.example")).status()).isEqualTo(403);
        assertThat(exchange(upgrade("/auth/s")).status()).isEqualTo(401);
        assertThat(exchange(upgrade("/refused/s")).status()).isEqualTo(502);
        clientGoneDuringTheBackendHandshake();
        assertThat(silent.nextEnd(5)).isEqualTo("eof");
        RawHttp.Response plain = exchange(Request.plain("GET", "/plain", "127.0.0.1"));
        assertThat(plain.status()).isEqualTo(200);
        try (RawHttp client = upgraded("/ws/one")) {
            echo(client);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        List<Line> log = stopAndRead(file);

        String start = "sid=- client=127\\.0\\.0\\.1 ";
        String backend = "ws://127\\.0\\.0\\.1:\\d+";
        assertThat(log).filteredOn(line -> "dev.wsproxy.access".equals(line.logger())).extracting(Line::message)
                .satisfiesExactlyInAnyOrder(
                        line -> assertThat(line).matches(start + "route=/origin/ backend=- duration_ms=\\d+ method=GET "
                                + "status=403 reason=origin_refused"),
                        line -> assertThat(line).matches(start + "route=/auth/ backend=- duration_ms=\\d+ method=GET "
                                + "status=401 reason=auth_refused"),
                        line -> assertThat(line).matches(start + "route=/refused/ backend=" + backend
                                + " duration_ms=\\d+ method=GET status=502 reason=backend_unreachable"),
                        line -> assertThat(line).matches(start + "route=/silent/ backend=" + backend
                                + " duration_ms=\\d+ method=GET status=499 reason=client_left"),
                        line -> assertThat(line).matches(start + "route=/ backend=" + backend + " duration_ms=\\d+ "
                                + "c2b_bytes=0 b2c_bytes=" + plain.body().length + " method=GET status=200 reason=-"),
                        line -> assertThat(line).matches(ACCESS).endsWith(" client_close=1000 backend_close=1000 "
                                + "first=client status=101 proxy_close=- reason=-"));
    }

    @Test
    void writesAnAccessLineForEachRequestJettyRefusesOrNoHandlerTakes() throws Exception {
        // Jetty's own refusals and its 404 had no access line: a scan, a broken client or a balancer sending oversized
        // headers left nothing at INFO.
        Path file = fork("info");
        assertThat(exchange(upgrade("/ws/s").add("X-Forwarded-For", "203.0.113.7")
                .add("X-Padding", "x".repeat(64 * 1024))).status()).isEqualTo(431);
        assertThat(exchange(upgrade("/ws/%2e%2e/s").add("X-Forwarded-For", "203.0.113.7")).status()).isEqualTo(400);
        assertThat(exchange(upgrade("/ws/s").method("G(T")).status()).isEqualTo(400);
        assertThat(exchange(withSecrets(Request.plain("DELETE", "/pages/p", host()))).status()).isEqualTo(404);
        List<Line> log = stopAndRead(file);

        // No route and no backend; the client forwarded by the trusted proxy when Jetty read the headers (a URI it
        // refuses), the peer when it did not (headers too large); no method when the request line was unreadable.
        String none = " route=- backend=- duration_ms=\\d+ ";
        assertThat(log).filteredOn(line -> "dev.wsproxy.access".equals(line.logger())).extracting(Line::message)
                .satisfiesExactlyInAnyOrder(
                        line -> assertThat(line).matches("sid=- client=127\\.0\\.0\\.1" + none
                                + "method=GET status=431 reason=headers_too_large"),
                        line -> assertThat(line).matches("sid=- client=203\\.0\\.113\\.7" + none
                                + "method=GET status=400 reason=bad_uri"),
                        line -> assertThat(line).matches("sid=- client=127\\.0\\.0\\.1" + none
                                + "method=- status=400 reason=bad_request"),
                        line -> assertThat(line).matches("sid=- client=127\\.0\\.0\\.1" + none
                                + "method=DELETE status=404 reason=no_route"));
    }

    @Test
    void writesABackendFailureWithItsPathCutAndItsClientAsTheAccessLogNamesIt() throws Exception {
        // One WARN of 7 KB for each request with a long path while a lone backend is down, and the client in
        // InetSocketAddress's form (/2001:db8:0:0:0:0:0:7:0), which no access line matches.
        Path file = fork("info");
        String path = "/refused/" + "p".repeat(7000);
        assertThat(exchange(upgrade(path).add("X-Forwarded-For", "2001:DB8:0:0::7")).status()).isEqualTo(502);
        List<Line> log = stopAndRead(file);

        assertThat(log).filteredOn(line -> "WARN".equals(line.level()) && line.message().contains("/refused/pp"))
                .singleElement().satisfies(line -> {
                    assertThat(line.text()).hasSizeLessThan(1024);
                    assertThat(line.message()).contains(" failed for GET " + path.substring(0, 200) + "... from "
                            + "2001:db8::7: backend unreachable: ");
                });
    }

    @Test
    void escapesAPeersCloseReasonInDebugLines() throws Exception {
        // A close reason is any UTF-8 the peer likes: the DEBUG line wrote its line break and its ESC as they came.
        Path file = fork("debug");
        try (RawHttp client = upgraded("/ws/reason")) {
            assertThat(client.closeHandshake(1000, "bye\nforged\u001B[31m").closeCode()).isEqualTo(1000);
        }
        List<Line> log = stopAndRead(file);

        assertThat(log).filteredOn(line -> line.text().contains("\u001B") || line.text().startsWith("forged"))
                .as("lines with the reason's ESC or starting after its line break").isEmpty();
        assertThat(log).filteredOn(line -> line.message() != null && line.message().contains("Close frame from the"))
                .extracting(Line::message)
                .anySatisfy(message -> assertThat(message).endsWith(": 1000 bye\\u000aforged\\u001b[31m"));
    }

    @Test
    void escapesAndCutsTheClientsSubprotocolInDebugLines() throws Exception {
        // A subprotocol is the client's offer, which a backend echoes: Jetty lets header bytes 0x80 to 0xFF through,
        // and the session's DEBUG open line wrote its U+0085 (NEL, a line break to some log pipelines) and its U+009B
        // (the 8-bit CSI) as they came, and all of its 2 KB.
        Path file = fork("debug");
        String subprotocol = "chat\u0085forged\u009b31m" + "p".repeat(2000);
        try (RawHttp client = connect()) {
            RawHttp.Response response = client.exchange(upgrade("/ws/subprotocol")
                    .add("Sec-WebSocket-Protocol", subprotocol));
            assertThat(response.status()).as("%s", response).isEqualTo(101);
            assertThat(response.header("Sec-WebSocket-Protocol")).as("the backend chose the offer")
                    .isEqualTo(subprotocol);
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        List<Line> log = stopAndRead(file);

        assertThat(log).filteredOn(line -> line.text().contains("\u0085") || line.text().contains("\u009b")
                        || line.text().contains("p".repeat(300)))
                .as("lines with the subprotocol's NEL or CSI, or all of it").isEmpty();
        assertThat(log).filteredOn(line -> line.message() != null && line.message().contains("] Open: "))
                .extracting(Line::message).singleElement()
                .satisfies(message -> assertThat(message).contains(" subprotocol=chat\\u0085forged\\u009b31mppp")
                        .endsWith("p..."));
    }

    // ---- the inputs ----

    /**
     * Throws every input at the proxy, checking each answer, and returns the outcome of each session that opened as its
     * access line must show it: {@code client_close backend_close first proxy_close reason}.
     */
    private List<String> throwEverythingAt() throws Exception {
        handshakesRefusedByTheProxy();
        requestsJettyRefusesOrNoHandlerTakes();
        handshakesThatFailAtTheBackend();
        slowloris();
        plainHttp();
        List<String> sessions = new ArrayList<>();
        sessions.addAll(sessionsThatEndCleanly());
        sessions.addAll(sessionsThatEndInFaults());
        sessions.addAll(invalidFrames());
        sessions.addAll(aSessionOpenWhileTheProxyStops());
        return sessions;
    }

    private void handshakesRefusedByTheProxy() throws IOException {
        assertThat(logged(upgrade("/ws/s").remove("Sec-WebSocket-Key"), "bad_request").status()).isEqualTo(400);
        assertThat(logged(upgrade("/ws/s").set("Sec-WebSocket-Key", "AAAA"), "bad_request").status()).isEqualTo(400);
        assertThat(logged(upgrade("/ws/s").method("POST").add("Content-Length", "0"), "bad_request").status())
                .isEqualTo(400);
        assertThat(logged(upgrade("/ws/s").add("Content-Length", "5").body("hello"), "bad_request").status())
                .isEqualTo(400);
        assertThat(logged(upgrade("/ws/s").version("HTTP/1.0"), "bad_request").status()).isEqualTo(400);
        RawHttp.Response version8 = logged(upgrade("/ws/s").set("Sec-WebSocket-Version", "8"), "bad_version");
        assertThat(version8.status()).isEqualTo(426);
        assertThat(version8.header("Sec-WebSocket-Version")).isEqualTo("13");
        assertThat(logged(upgrade("/ws/s").set("Sec-WebSocket-Version", "1337"), "bad_version").status())
                .isEqualTo(426);
        assertThat(logged(upgrade("/origin/s").add("Origin", "https://evil.example"), "origin_refused").status())
                .isEqualTo(403);
        assertThat(logged(upgrade("/auth/s"), "auth_refused").status()).isEqualTo(401);
    }

    /**
     * Requests Jetty answers itself, before the proxy runs (its parser, its URI compliance), or when no handler takes
     * them: each has its access line from the standalone server's error handler, without a route.
     */
    private void requestsJettyRefusesOrNoHandlerTakes() throws IOException {
        assertThat(logged(upgrade("/ws/s").add("Host", "other.example"), "bad_host").status()).isEqualTo(400);
        assertThat(logged(upgrade("/ws/s").set("Host", "bad host"), "bad_host").status()).isEqualTo(400);
        assertThat(logged(upgrade("/ws/s").add("X-Padding", "x".repeat(64 * 1024)), "headers_too_large").status())
                .isEqualTo(431);
        assertThat(logged(upgrade("/ws/%2e%2e/s"), "bad_uri").status()).isEqualTo(400);
        assertThat(logged(upgrade("/ws/" + "u".repeat(64 * 1024)), "uri_too_long").status()).isEqualTo(414);
        assertThat(logged(upgrade("/ws/s").method("G(T"), "bad_request").status()).isEqualTo(400);
        assertThat(logged(withSecrets(Request.plain("GET", "/pages/p?token=" + TOKEN, host())), "no_route").status())
                .isEqualTo(404);
    }

    private void handshakesThatFailAtTheBackend() throws Exception {
        for (int i = 0; i < 2; i++) {
            assertThat(logged(upgrade("/refused/s" + i), "backend_unreachable").status()).isEqualTo(502);
        }
        assertThat(logged(upgrade("/silent/s"), "backend_timeout").status()).isEqualTo(504);
        clientGoneDuringTheBackendHandshake();
        assertThat(silent.nextEnd(5)).isEqualTo("eof"); // the 504's connection
        assertThat(silent.nextEnd(5)).isEqualTo("eof");
        RawHttp.Response refusal = logged(upgrade("/reject401/s"), "backend_refused");
        assertThat(refusal.status()).isEqualTo(401);
        assertThat(refusal.bodyText()).isEqualTo("token required");
    }

    /** A client that leaves while the backend has not answered: nothing is sent, the backend connection is closed. */
    private void clientGoneDuringTheBackendHandshake() throws Exception {
        try (RawHttp client = connect()) {
            client.send(upgrade("/silent/gone"));
            silent.nextRequest();
            client.reset();
        }
        requests.add("499 client_left");
    }

    private void slowloris() throws IOException {
        // Half a request head, then the client gives up.
        try (RawHttp client = connect()) {
            client.send("GET /ws/slow?token=" + TOKEN + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                    + BEARER + "\r\n");
            client.reset();
        }
        requests.add("400 incomplete_head");
        // Half a request head, then nothing: closed at the handshake deadline, long before the read timeout.
        try (RawHttp client = connect()) {
            client.send("GET /ws/slow?token=" + TOKEN + " HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: session="
                    + COOKIE + "\r\n");
            assertThat(client.closedWithin(Duration.ofSeconds(8))).as("closed at the handshake deadline").isTrue();
        }
        requests.add("408 header_timeout");
        // Nothing at all: no line.
        try (RawHttp client = connect()) {
            assertThat(client.closedWithin(Duration.ofSeconds(8))).as("closed at the handshake deadline").isTrue();
        }
    }

    private void plainHttp() throws IOException {
        RawHttp.Response plain = logged(withSecrets(Request.plain("GET", "/plain?token=" + TOKEN, "127.0.0.1")), "-");
        assertThat(plain.status()).isEqualTo(200);
        assertThat(plain.bodyText()).startsWith("plain:/plain?token=" + TOKEN);
        assertThat(logged(withSecrets(Request.plain("GET", "/refused/plain?token=" + TOKEN, "127.0.0.1")),
                "backend_unreachable").status()).isEqualTo(502);
    }

    private List<String> sessionsThatEndCleanly() throws Exception {
        try (RawHttp client = upgraded("/ws/clean")) {
            client.sendText(PAYLOAD);
            assertThat(client.readFrame().text()).isEqualTo(PAYLOAD);
            assertThat(client.closeHandshake(1000, "bye").closeCode()).isEqualTo(1000);
        }
        try (RawHttp client = upgraded("/ws/backend-closes")) {
            client.sendText("close:4001:bye");
            RawFrames.Frame close = client.readFrame();
            assertThat(close.closeCode()).isEqualTo(4001);
            client.send(RawFrames.close(4001, "", true));
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        try (RawHttp client = upgraded("/ws/mid-message")) {
            client.send(RawFrames.encode(false, RawFrames.TEXT, PAYLOAD.getBytes(StandardCharsets.UTF_8), true));
            assertThat(client.closeHandshake(1000, "").closeCode()).isEqualTo(1000);
        }
        try (RawHttp client = upgraded("/ws/after-close")) {
            byte[] close = RawFrames.close(1000, "", true);
            byte[] late = RawFrames.text(PAYLOAD, true);
            byte[] both = new byte[close.length + late.length];
            System.arraycopy(close, 0, both, 0, close.length);
            System.arraycopy(late, 0, both, close.length, late.length);
            client.send(both);
            assertThat(client.readFrame().closeCode()).isEqualTo(1000);
        }
        return List.of("1000 1000 client - -", "4001 4001 backend - -", "1000 1000 client - -",
                "1000 1000 client - -");
    }

    private List<String> sessionsThatEndInFaults() throws Exception {
        try (RawHttp client = upgraded("/ws/reset")) {
            echo(client);
            client.reset();
        }
        try (RawHttp client = upgraded("/ws/half-close")) {
            echo(client);
            client.shutdownOutput();
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        try (RawHttp client = upgraded("/ws/backend-drops")) {
            client.sendText("drop");
            assertThat(client.readFrame().closeCode()).isEqualTo(1014);
            assertThat(client.closedWithin(Duration.ofSeconds(5))).isTrue();
        }
        return List.of("1006 1006 client - -", "1006 1006 client - -", "1006 1006 backend - -");
    }

    private List<String> invalidFrames() throws Exception {
        List<InvalidFrame> frames = List.of(
                new InvalidFrame(bytes(0x81, 0x02, 'h', 'i'), 1002, "protocol_error"),              // unmasked
                new InvalidFrame(bytes(0xC1, 0x82, 0, 0, 0, 0, 'h', 'i'), 1002, "protocol_error"),  // RSV1
                new InvalidFrame(bytes(0x83, 0xFF, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4), 1002,
                        "protocol_error"),                                                          // CVE
                new InvalidFrame(bytes(0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4), 1009,
                        "message_too_big"),                                                         // length's top bit
                new InvalidFrame(bytes(0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE7), 1002, "protocol_error"), // close code 999
                new InvalidFrame(bytes(0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28), 1007, "invalid_utf8")); // invalid UTF-8
        List<String> sessions = new ArrayList<>();
        for (InvalidFrame frame : frames) {
            try (RawHttp client = upgraded("/ws/invalid")) {
                client.send(frame.bytes());
                assertThat(client.readFrame().closeCode()).isEqualTo(frame.code());
            }
            // Jetty's parser fails the client leg for the protocol errors and the impossible length, the relay checks
            // UTF-8 itself: the proxy ended each session, with the code the client got.
            sessions.add("1006 1006 proxy " + frame.code() + " " + frame.reason());
        }
        return sessions;
    }

    /** A session open while the proxy stops, from a Jetty client that answers the proxy's close. */
    private List<String> aSessionOpenWhileTheProxyStops() throws Exception {
        open = clients.connect(proxy.ws("/ws/open?token=" + TOKEN),
                Map.of("Authorization", "Bearer " + BEARER, "Cookie", "session=" + COOKIE));
        // The proxy drops each connection after its 1001 (Jetty does after any close code but 1000 and 3000+), so
        // neither answer is seen: 1006 for both.
        return List.of("1006 1006 proxy 1001 shutdown");
    }

    /** A frame that breaks RFC 6455, the close code it gets and the reason its session's access line gives. */
    record InvalidFrame(byte[] bytes, int code, String reason) {
    }

    // ---- the log ----

    /** One line of the log: a record's first line (its level, logger and message), or a line that follows one. */
    record Line(String text, String level, String logger, String message) {
    }

    /** Stops the proxy (the session left open, if any, gets 1001), and reads its log. */
    private List<Line> stopAndRead(Path file) throws Exception {
        proxy.close();
        assertThat(proxy.exitValue()).as("the proxy's exit code").isZero();
        if (open != null) {
            assertThat(open.nextClose()).isEqualTo(new WsRecorder.Closed(1001, "proxy shutting down"));
        }
        List<Line> lines = new ArrayList<>();
        for (String text : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (text.startsWith("WARNING: ")) {
                continue; // the JVM's own warnings (JDK 26 warns once of the final fields Masking sets), not a record
            }
            Matcher record = RECORD.matcher(text);
            lines.add(record.matches() ? new Line(text, record.group(1), record.group(2), record.group(3))
                    : new Line(text, null, null, null));
        }
        System.out.println("The forked proxy's log:");
        lines.forEach(line -> System.out.println("  " + line.text()));
        return lines;
    }

    private static void assertNoErrorAndNoSecret(List<Line> log) {
        assertThat(log).filteredOn(line -> "ERROR".equals(line.level())).as("records at ERROR").isEmpty();
        for (String secret : SECRETS) {
            assertThat(log).filteredOn(line -> line.text().contains(secret)).as("lines with the secret %s", secret)
                    .isEmpty();
        }
        assertThat(log).filteredOn(line -> line.text().contains("token=")).as("lines with a query").isEmpty();
    }

    /**
     * One access line per session, in the documented format, with each session's close codes and initiator, and one
     * per request without a session ({@link #requests}), with its status and reason; nothing else.
     */
    private void assertAccessLines(List<Line> log, List<String> sessions) {
        List<Line> access = log.stream().filter(line -> "dev.wsproxy.access".equals(line.logger())).toList();
        assertThat(access).allSatisfy(line -> assertThat(line.level()).isEqualTo("INFO"));
        List<String> sessionOutcomes = new ArrayList<>();
        List<String> requestOutcomes = new ArrayList<>();
        for (Line line : access) {
            Matcher session = ACCESS.matcher(line.message());
            Matcher request = REQUEST.matcher(line.message());
            if (session.matches()) {
                sessionOutcomes.add(session.group(1) + " " + session.group(2) + " " + session.group(3) + " "
                        + session.group(4) + " " + session.group(5));
            } else {
                assertThat(request.matches()).as("a session's or a request's access line: %s", line.message())
                        .isTrue();
                requestOutcomes.add(request.group(5) + " " + request.group(6));
            }
        }
        assertThat(sessionOutcomes).as("sessions' access lines: client_close backend_close first proxy_close reason")
                .containsExactlyInAnyOrderElementsOf(sessions);
        assertThat(requestOutcomes).as("requests' access lines: status reason")
                .containsExactlyInAnyOrderElementsOf(requests);
    }

    // ---- helpers ----

    private RawHttp connect() throws IOException {
        return RawHttp.over(new Socket("127.0.0.1", proxy.port()));
    }

    private String host() {
        return "127.0.0.1:" + proxy.port();
    }

    /** An upgrade for {@code path} with a secret in its query, its {@code Authorization} and its {@code Cookie}. */
    private Request upgrade(String path) {
        return withSecrets(Request.upgrade(path + "?token=" + TOKEN, host()));
    }

    private static Request withSecrets(Request request) {
        return request.add("Authorization", "Bearer " + BEARER).add("Cookie", "session=" + COOKIE);
    }

    private RawHttp.Response exchange(Request request) throws IOException {
        try (RawHttp client = connect()) {
            return client.exchange(request);
        }
    }

    /**
     * Exchanges {@code request}, which the proxy answers without a session, and notes the access line it must get:
     * the status it got, and {@code reason}.
     */
    private RawHttp.Response logged(Request request, String reason) throws IOException {
        RawHttp.Response response = exchange(request);
        requests.add(response.status() + " " + reason);
        return response;
    }

    private RawHttp upgraded(String path) throws IOException {
        RawHttp client = connect();
        RawHttp.Response response = client.exchange(upgrade(path));
        assertThat(response.status()).as("%s", response).isEqualTo(101);
        return client;
    }

    private static void echo(RawHttp client) throws IOException {
        client.sendText(PAYLOAD);
        assertThat(client.readFrame().text()).isEqualTo(PAYLOAD);
    }

}
