package dev.wsproxy.examples.standalone;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launcher's contract with the outside world, checked on a real child JVM: the flags, the one
 * {@code listening on} line, exit statuses, and a clean drain on {@code SIGTERM} ({@link Process#destroy()} on
 * Linux and macOS). Subclasses say how to start the launcher: from the test class path, or as the runnable jar.
 */
abstract class LauncherProcessContract {

    private static final Pattern LISTENING = Pattern.compile("listening on http://127\\.0\\.0\\.1:(\\d+)\\R");
    private static final Duration STARTUP = Duration.ofSeconds(20);

    @TempDir
    Path dir;

    private final HttpClient http = HttpClient.newHttpClient();
    private final EchoBackend backendA = new EchoBackend("a");
    private final EchoBackend backendB = new EchoBackend("b");
    private URI backendAUri;
    private URI backendBUri;
    private Process process;
    private Path stdout;
    private Path stderr;

    /** Returns the command that runs the launcher's {@code main}, to which the flags are appended. */
    abstract List<String> launcherCommand();

    static String java() {
        return Paths.get(System.getProperty("java.home"), "bin", "java").toString();
    }

    @BeforeEach
    void startBackends() throws Exception {
        backendAUri = backendA.start();
        backendBUri = backendB.start();
    }

    @AfterEach
    void stopEverything() throws Exception {
        if (process != null && process.isAlive()) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
        backendA.stop();
        backendB.stop();
    }

    @Test
    void proxiesTheRouteRoundRobinAndDrainsAndExits0OnSigterm() throws Exception {
        start("--listen", "127.0.0.1:0",
                "--route", "/ws/=" + backendAUri + "," + backendBUri,
                "--balance", "round-robin",
                "--connect-timeout", "5s",
                "--idle-timeout", "1m",
                "--max-message-size", "64k");
        int port = awaitListeningPort();

        WebSocketRecorder first = new WebSocketRecorder();
        WebSocket firstSocket = connect(port, "/ws/echo", first);
        firstSocket.sendText("hello", true).get(5, TimeUnit.SECONDS);
        String firstReply = first.nextText();

        WebSocketRecorder second = new WebSocketRecorder();
        WebSocket secondSocket = connect(port, "/ws/echo?x=1", second);
        secondSocket.sendText("again", true).get(5, TimeUnit.SECONDS);
        String secondReply = second.nextText();

        assertThat(List.of(firstReply, secondReply)).containsExactlyInAnyOrder(
                "a:/ws/echo:" + (firstReply.startsWith("a:") ? "hello" : "again"),
                "b:/ws/echo:" + (firstReply.startsWith("b:") ? "hello" : "again"));

        process.destroy(); // SIGTERM

        assertThat(first.awaitClose()).isEqualTo(1001);
        assertThat(second.awaitClose()).isEqualTo(1001);
        assertThat(process.waitFor(20, TimeUnit.SECONDS)).as(() -> "exited after SIGTERM; stderr: " + stderrText()).isTrue();
        assertThat(process.exitValue()).as(() -> "exit status; stderr: " + stderrText()).isZero();
        assertThat(stdoutText()).as("stdout, still only the 'listening on' line").isEqualTo("listening on http://127.0.0.1:" + port + System.lineSeparator());
    }

    @Test
    void exitsAtOnceWith0OnASecondSigtermDuringTheDrain() throws Exception {
        start("--listen", "127.0.0.1:0", "--route", "/ws/=" + backendAUri);
        int port = awaitListeningPort();
        // A client that reads nothing while the backend pushes to it: its close frame cannot be written, and the drain
        // waits for it until the drain timeout (10 s).
        WebSocket stalled = connect(port, "/ws/stalled", WebSocketRecorder.notReading());
        stalled.sendText("push:4096:65536", true).get(5, TimeUnit.SECONDS);
        backendA.awaitPushStalled();
        WebSocketRecorder healthy = new WebSocketRecorder();
        connect(port, "/ws/healthy", healthy);

        process.destroy(); // SIGTERM
        assertThat(healthy.awaitClose()).as("the drain has begun").isEqualTo(1001);
        assertThat(process.isAlive()).as("the drain waits for the stalled client").isTrue();
        process.destroy(); // SIGTERM again

        // It exited after the whole drain, 10 s.
        assertThat(process.waitFor(5, TimeUnit.SECONDS)).as(() -> "exited; stderr: " + stderrText()).isTrue();
        assertThat(process.exitValue()).as(() -> "exit status; stderr: " + stderrText()).isZero();
        assertThat(stderrText()).contains("Stopped again: drain cut short");
        stalled.abort();
    }

    @Test
    void readsTheBackendFileAgainOnSighupKeepingOpenSessions() throws Exception {
        Path backends = Files.writeString(dir.resolve("chat.backends"), backendAUri + "\n");
        start("--listen", "127.0.0.1:0", "--route", "/ws/=@" + backends);
        int port = awaitListeningPort();
        WebSocketRecorder onA = new WebSocketRecorder();
        WebSocket first = connect(port, "/ws/one", onA);
        first.sendText("hi", true).get(5, TimeUnit.SECONDS);
        assertThat(onA.nextText()).isEqualTo("a:/ws/one:hi");

        Path next = Files.writeString(dir.resolve("next.backends"), backendBUri + "\n");
        Files.move(next, backends, StandardCopyOption.REPLACE_EXISTING);
        Process hup = new ProcessBuilder("kill", "-HUP", Long.toString(process.pid())).inheritIO().start();
        assertThat(hup.waitFor(10, TimeUnit.SECONDS) && hup.exitValue() == 0).as("kill -HUP sent").isTrue();

        // The signal is handled on a thread of its own: new sessions reach b once it has been.
        await().atMost(STARTUP).failFast("the launcher exited", () -> !process.isAlive())
                .until(() -> echoOnce(port, "/ws/next").startsWith("b:"));
        first.sendText("still here", true).get(5, TimeUnit.SECONDS);
        assertThat(onA.nextText()).as("the open session stays on a").isEqualTo("a:/ws/one:still here");
        assertThat(stderrText()).contains("Received SIGHUP");
        assertThat(process.isAlive()).as("SIGHUP does not end the launcher").isTrue();
    }

    @Test
    void followsTheDnsNameOfARouteMarkedResolveWithTheJvmsDnsCacheSetToTheRefresh() throws Exception {
        start("--listen", "127.0.0.1:0", "--route", "/ws/=ws://localhost:" + backendAUri.getPort() + ";resolve",
                "--dns-refresh", "2s");
        int port = awaitListeningPort();

        // Until its first answer the route answers 503; it comes at the start, on the server's thread pool.
        await().atMost(STARTUP).failFast("the launcher exited", () -> !process.isAlive())
                .ignoreExceptions().until(() -> echoOnce(port, "/ws/named").equals("a:/ws/named:hi"));
        assertThat(stderrText()).contains("DNS answers are cached for 2 s at most");
    }

    @Test
    void keepsTheClientPathWhenTheBackendUrlHasNone() throws Exception {
        start("--listen", "127.0.0.1:0", "--route", "/chat/=" + backendAUri + "/rooms/");
        int port = awaitListeningPort();

        WebSocketRecorder client = new WebSocketRecorder();
        connect(port, "/chat/lobby", client).sendText("hi", true).get(5, TimeUnit.SECONDS);

        assertThat(client.nextText()).isEqualTo("a:/rooms/lobby:hi");
    }

    @Test
    void rejectsOriginsNotAllowed() throws Exception {
        start("--listen", "127.0.0.1:0", "--route", "/ws/=" + backendAUri,
                "--allow-origin", "https://app.example.com", "--allow-origin", "https://other.example.com");
        int port = awaitListeningPort();
        URI uri = URI.create("ws://127.0.0.1:" + port + "/ws/");

        assertThat(http.newWebSocketBuilder().header("Origin", "https://other.example.com")
                .buildAsync(uri, new WebSocketRecorder())).succeedsWithin(Duration.ofSeconds(5));
        assertThat(http.newWebSocketBuilder().header("Origin", "https://evil.example.com")
                .buildAsync(uri, new WebSocketRecorder())).failsWithin(Duration.ofSeconds(5));
    }

    @Test
    void printsUsageAndExits0OnHelp() throws Exception {
        start("--help");

        assertThat(process.waitFor(20, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).isZero();
        assertThat(stdoutText()).isEqualTo(LauncherOptions.usage());
        assertThat(stderrText()).isEmpty();
    }

    @Test
    void printsAOneLineErrorAndExits2OnABadFlag() throws Exception {
        start("--route", "/ws/=" + backendAUri, "--listen", "localhost");

        assertThat(process.waitFor(20, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).isEqualTo(2);
        assertThat(stdoutText()).isEmpty();
        assertThat(stderrText().lines()).containsExactly(
                "wsproxy: --listen: 'localhost' (expected: HOST:PORT, like 127.0.0.1:8080, 0.0.0.0:0 or [::1]:8080)",
                Launcher.USAGE_HINT);
    }

    private void start(String... flags) throws IOException {
        List<String> command = new ArrayList<>(launcherCommand());
        command.addAll(List.of(flags));
        stdout = dir.resolve("stdout.txt");
        stderr = dir.resolve("stderr.txt");
        process = new ProcessBuilder(command)
                .redirectOutput(stdout.toFile())
                .redirectError(stderr.toFile())
                .start();
        process.getOutputStream().close();
    }

    /** Waits for the first line on stdout, checks it is the only one so far, and returns the port it names. */
    private int awaitListeningPort() throws IOException {
        await().atMost(STARTUP)
                .failFast("the launcher exited", () -> !process.isAlive())
                .until(() -> stdoutText().contains("\n"));
        String text = stdoutText();
        Matcher listening = LISTENING.matcher(text);
        assertThat(listening.matches()).as("stdout '%s' matches %s", text, LISTENING).isTrue();
        int port = Integer.parseInt(listening.group(1));
        assertThat(port).isPositive();
        return port;
    }

    private WebSocket connect(int port, String pathAndQuery, WebSocketRecorder recorder) throws Exception {
        URI uri = URI.create("ws://127.0.0.1:" + port + pathAndQuery);
        return http.newWebSocketBuilder().buildAsync(uri, recorder).get(5, TimeUnit.SECONDS);
    }

    /** Opens a session on {@code path}, sends {@code hi}, and returns the echo after closing the session. */
    private String echoOnce(int port, String path) throws Exception {
        WebSocketRecorder recorder = new WebSocketRecorder();
        WebSocket socket = connect(port, path, recorder);
        socket.sendText("hi", true).get(5, TimeUnit.SECONDS);
        String echo = recorder.nextText();
        socket.sendClose(WebSocket.NORMAL_CLOSURE, "").get(5, TimeUnit.SECONDS);
        return echo;
    }

    private String stdoutText() throws IOException {
        return Files.readString(stdout, UTF_8);
    }

    private String stderrText() {
        try {
            return Files.readString(stderr, UTF_8);
        } catch (IOException e) {
            return "stderr: " + e;
        }
    }
}
