package dev.wsproxy.examples.standalone;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.InstanceOfAssertFactories.STRING;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.net.http.HttpClient;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launcher in process: exit statuses and output for the runs that end before serving, and the session limits
 * of runs that serve (the launcher on a thread, in front of a Jetty echo backend, until {@link Launcher#stop()}).
 */
class LauncherTest {

    private static final Duration TIMEOUT = Duration.ofSeconds(20);
    private static final Pattern LISTENING = Pattern.compile("listening on (https?)://127\\.0\\.0\\.1:(\\d+)\\R");
    private static final String PASSWORD_VARIABLE = "WSPROXY_TEST_TLS_PASSWORD";
    private static final String PASSWORD = "launcher-test-only";
    private static final String EMPTY_PASSWORD_VARIABLE = "WSPROXY_TEST_EMPTY_PASSWORD";

    private final ReadyLineOutput out = new ReadyLineOutput();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();
    private final Launcher launcher = new Launcher(new PrintStream(out, true, UTF_8), new PrintStream(err, true, UTF_8),
            Map.of(PASSWORD_VARIABLE, PASSWORD, EMPTY_PASSWORD_VARIABLE, ""));
    private String scheme;

    private final HttpClient http = HttpClient.newHttpClient();
    private final List<WebSocket> openSockets = new ArrayList<>();
    private final CompletableFuture<Integer> exitStatus = new CompletableFuture<>();
    private EchoBackend backend;
    private URI backendUri;
    private boolean serving;

    @AfterEach
    void stopServing() throws Exception {
        try {
            if (serving) {
                launcher.stop();
                assertThat(exitStatus.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)).as("exit status after stop()")
                        .isEqualTo(Launcher.EXIT_OK);
            }
            openSockets.forEach(WebSocket::abort);
        } finally {
            if (backend != null) {
                backend.stop();
            }
        }
    }

    @Test
    void printsUsageToStdoutAndExits0OnHelp() {
        assertThat(launcher.run("--help")).isEqualTo(Launcher.EXIT_OK);

        assertThat(out.toString(UTF_8)).isEqualTo(LauncherOptions.usage()).startsWith("Usage: ");
        assertThat(err.toString(UTF_8)).isEmpty();
    }

    @Test
    void printsUsageAndExits0OnHelpAfterABadFlag() {
        assertThat(launcher.run("--listen", "bad", "--help")).isEqualTo(Launcher.EXIT_OK);

        assertThat(out.toString(UTF_8)).isEqualTo(LauncherOptions.usage());
        assertThat(err.toString(UTF_8)).isEmpty();
    }

    @Test
    void printsOneLineErrorAndHintToStderrAndExits2OnBadFlag() {
        assertThat(launcher.run("--route", "/ws/=ws://127.0.0.1:3000", "--idle-timeout", "soon"))
                .isEqualTo(Launcher.EXIT_USAGE);

        assertThat(out.toString(UTF_8)).isEmpty();
        assertThat(err.toString(UTF_8).lines()).containsExactly(
                "wsproxy: --idle-timeout: 'soon' (expected: a duration like 500ms, 5s, 2m or 1h)",
                "Run with --help for usage.");
    }

    @Test
    void printsOneLineErrorAndExits2OnABadLimitOrTrustedProxy() {
        assertThat(launcher.run("--route", "/ws/=ws://127.0.0.1:3000", "--handshake-rate-per-ip", "5/m"))
                .isEqualTo(Launcher.EXIT_USAGE);
        assertThat(launcher.run("--route", "/ws/=ws://127.0.0.1:3000", "--trusted-proxy", "proxy.internal"))
                .isEqualTo(Launcher.EXIT_USAGE);
        assertThat(launcher.run("--route", "/ws/=ws://127.0.0.1:3000", "--per-ip-ipv6-prefix", "129"))
                .isEqualTo(Launcher.EXIT_USAGE);

        assertThat(out.toString(UTF_8)).isEmpty();
        assertThat(err.toString(UTF_8).lines()).containsExactly(
                "wsproxy: --handshake-rate-per-ip: '5/m' (expected: handshakes per second, at least 1, like 10/s"
                        + " or 10)",
                "Run with --help for usage.",
                "wsproxy: --trusted-proxy: 'proxy.internal' (expected: an IP address or block, like 10.0.0.0/8,"
                        + " 192.168.1.7 or fd00::/8)",
                "Run with --help for usage.",
                "wsproxy: --per-ip-ipv6-prefix: '129' (expected: a prefix length in bits, 1 to 128, like 64, 56 or"
                        + " 128)",
                "Run with --help for usage.");
    }

    @Test
    void printsTheLibrarysCauseAndExits2OnARefusedRoute() {
        assertThat(launcher.run("--route", "/ws/=ws://127.0.0.1:3000,http://127.0.0.1:3000"))
                .isEqualTo(Launcher.EXIT_USAGE);

        assertThat(out.toString(UTF_8)).isEmpty();
        assertThat(err.toString(UTF_8).lines()).containsExactly(
                "wsproxy: --route: '/ws/=ws://127.0.0.1:3000,http://127.0.0.1:3000': backends: [ws://127.0.0.1:3000,"
                        + " ws://127.0.0.1:3000] (expected: each URI once; ws://127.0.0.1:3000 is given twice)",
                "Run with --help for usage.");
    }

    @Test
    void printsOneLineErrorAndExits2OnABlankListenHost() {
        // It was a stack trace (IllegalArgumentException from ProxyBuilder.listen) and exit 1.
        assertThat(launcher.run("--listen", " :8080", "--route", "/ws/=ws://127.0.0.1:3000"))
                .isEqualTo(Launcher.EXIT_USAGE);

        assertThat(out.toString(UTF_8)).isEmpty();
        assertThat(err.toString(UTF_8).lines()).containsExactly(
                "wsproxy: --listen: ' :8080' (expected: HOST:PORT, like 127.0.0.1:8080, 0.0.0.0:0 or [::1]:8080)",
                "Run with --help for usage.");
    }

    @Test
    void exits2WithoutARoute() {
        assertThat(launcher.run()).isEqualTo(Launcher.EXIT_USAGE);

        assertThat(err.toString(UTF_8)).startsWith("wsproxy: --route: missing");
    }

    @Test
    void exits1WhenTheAddressIsTaken() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            String listen = "127.0.0.1:" + taken.getLocalPort();

            assertThat(launcher.run("--listen", listen, "--route", "/ws/=ws://127.0.0.1:3000"))
                    .isEqualTo(Launcher.EXIT_FAILURE);

            assertThat(out.toString(UTF_8)).isEmpty();
            assertThat(err.toString(UTF_8).lines()).singleElement(STRING)
                    .startsWith("wsproxy: --listen: cannot listen on " + listen + " (");
        }
    }

    @Test
    void refusesASecondConcurrentSessionFromTheSameClientWith429AndKeepsTheFirstOpen() throws Exception {
        int port = serve("--max-connections-per-ip", "1");

        WebSocketRecorder first = new WebSocketRecorder();
        WebSocket firstSocket = connect(port, "/ws/one", first);
        firstSocket.sendText("hello", true).get(5, TimeUnit.SECONDS);
        assertThat(first.nextText()).isEqualTo("echo:/ws/one:hello");

        HttpResponse<?> refused = refusedHandshake(port, "/ws/two");
        assertThat(refused.statusCode()).isEqualTo(429);
        assertThat(refused.headers().firstValue("Retry-After")).hasValue("1");
        // Without --trusted-proxy, a client cannot pass for another one with X-Forwarded-For.
        assertThat(refusedHandshake(port, "/ws/three", "X-Forwarded-For", "198.51.100.7").statusCode())
                .isEqualTo(429);

        firstSocket.sendText("still here", true).get(5, TimeUnit.SECONDS);
        assertThat(first.nextText()).as("the first session is untouched").isEqualTo("echo:/ws/one:still here");
        assertThat(firstSocket.isInputClosed()).isFalse();
    }

    @Test
    void countsTheClientsBehindATrustedProxySeparately() throws Exception {
        int port = serve("--trusted-proxy", "127.0.0.1", "--max-connections-per-ip", "1");

        WebSocketRecorder alice = new WebSocketRecorder();
        connect(port, "/ws/a", alice, "X-Forwarded-For", "198.51.100.7").sendText("hi", true).get(5, TimeUnit.SECONDS);
        WebSocketRecorder bob = new WebSocketRecorder();
        connect(port, "/ws/b", bob, "X-Forwarded-For", "198.51.100.8").sendText("hi", true).get(5, TimeUnit.SECONDS);

        assertThat(alice.nextText()).isEqualTo("echo:/ws/a:hi");
        assertThat(bob.nextText()).isEqualTo("echo:/ws/b:hi");
        assertThat(refusedHandshake(port, "/ws/c", "X-Forwarded-For", "198.51.100.7").statusCode())
                .as("a second session of the first client").isEqualTo(429);
    }

    /**
     * {@code --per-ip-ipv6-prefix 48} counts the IPv6 clients of one /48 as one for {@code --max-connections-per-ip}:
     * two /64s of it share one slot (each would have its own at the default 64), another /48 has its own.
     */
    @Test
    void countsTheIpv6ClientsOfOneBlockOfThePrefixGivenAsOne() throws Exception {
        int port = serve("--trusted-proxy", "127.0.0.1", "--max-connections-per-ip", "1", "--per-ip-ipv6-prefix", "48");

        WebSocketRecorder first = new WebSocketRecorder();
        connect(port, "/ws/a", first, "X-Forwarded-For", "2001:db8:1:1::7").sendText("hi", true)
                .get(5, TimeUnit.SECONDS);
        assertThat(first.nextText()).isEqualTo("echo:/ws/a:hi");
        assertThat(refusedHandshake(port, "/ws/b", "X-Forwarded-For", "2001:db8:1:2::8").statusCode())
                .as("another /64 of the same /48").isEqualTo(429);
        WebSocketRecorder other = new WebSocketRecorder();
        connect(port, "/ws/c", other, "X-Forwarded-For", "2001:db8:2::7").sendText("hi", true)
                .get(5, TimeUnit.SECONDS);
        assertThat(other.nextText()).as("another /48").isEqualTo("echo:/ws/c:hi");
    }

    @Test
    void refusesASessionOverTheProxyWideLimitWith503() throws Exception {
        int port = serve("--max-connections", "1");
        WebSocketRecorder first = new WebSocketRecorder();
        connect(port, "/ws/one", first).sendText("hello", true).get(5, TimeUnit.SECONDS);
        assertThat(first.nextText()).isEqualTo("echo:/ws/one:hello");

        HttpResponse<?> refused = refusedHandshake(port, "/ws/two");

        assertThat(refused.statusCode()).isEqualTo(503);
        assertThat(refused.headers().firstValue("Retry-After")).isPresent();
    }

    @Test
    void refusesAHandshakeOverTheRateWith429() throws Exception {
        int port = serve("--handshake-rate-per-ip", "1/s");
        connect(port, "/ws/one", new WebSocketRecorder());

        // The bucket holds 1 token and gets the next one a second later: an immediate second handshake has none.
        assertThat(refusedHandshake(port, "/ws/two").statusCode()).isEqualTo(429);
    }

    @Test
    void aSecondStopDuringTheDrainReturnsWithoutWaitingForIt() throws Exception {
        int port = serve();
        // A client that reads nothing while the backend pushes to it: its close frame cannot be written, and the drain
        // waits for it until the drain timeout (10 s).
        connect(port, "/ws/stalled", WebSocketRecorder.notReading()).sendText("push:4096:65536", true)
                .get(5, TimeUnit.SECONDS);
        backend.awaitPushStalled();
        WebSocketRecorder healthy = new WebSocketRecorder();
        connect(port, "/ws/healthy", healthy);

        launcher.stop();
        assertThat(healthy.awaitClose()).as("the drain has begun").isEqualTo(1001);
        assertThat(exitStatus).as("the drain waits for the stalled client").isNotDone();

        launcher.stop();

        // It was run()'s return after the whole drain, 10 s.
        assertThat(exitStatus).succeedsWithin(Duration.ofSeconds(3)).isEqualTo(Launcher.EXIT_OK);
    }

    @Test
    void servesWssWithTheKeyStoreAndThePasswordFromTheEnvironment(@TempDir Path dir) throws Exception {
        Path keyStore = keyStore(dir);
        int port = serve("--tls-keystore", keyStore.toString(), "--tls-password-env", PASSWORD_VARIABLE);
        assertThat(scheme).isEqualTo("https");

        assertEchoesOverWss(port, KeyStore.getInstance(keyStore.toFile(), PASSWORD.toCharArray()));
    }

    @Test
    void servesWssWithAKeyStoreWhosePasswordIsEmpty(@TempDir Path dir) throws Exception {
        // As openssl pkcs12 -export makes it when its password prompt is left empty: a set, empty variable is that
        // password, not a missing one.
        Path keyStore = withEmptyPassword(keyStore(dir), dir.resolve("empty-password.p12"));
        int port = serve("--tls-keystore", keyStore.toString(), "--tls-password-env", EMPTY_PASSWORD_VARIABLE);
        assertThat(scheme).isEqualTo("https");

        assertEchoesOverWss(port, KeyStore.getInstance(keyStore.toFile(), new char[0]));
    }

    @Test
    void readsTheKeyStoreAgainOnReloadAndKeepsTheOldOneWhenTheNewFileIsBad(@TempDir Path dir) throws Exception {
        Path keyStore = keyStore(dir, "CN=localhost");
        int port = serve("--tls-keystore", keyStore.toString(), "--tls-password-env", PASSWORD_VARIABLE);
        assertThat(servedSubject(port)).isEqualTo("CN=localhost");

        // A renewed certificate, written as certbot's hooks do: a new file moved over the old one.
        Path renewed = keyStore(Files.createDirectories(dir.resolve("renewed")), "CN=renewed");
        Files.move(renewed, keyStore, StandardCopyOption.REPLACE_EXISTING);
        launcher.reload();
        assertThat(servedSubject(port)).isEqualTo("CN=renewed");

        Files.write(keyStore, new byte[] {1, 2, 3});
        launcher.reload();
        assertThat(servedSubject(port)).as("after a reload of a broken file").isEqualTo("CN=renewed");
        assertThat(exitStatus).as("the launcher still runs").isNotDone();
    }

    @Test
    void givesAFileRouteTheBackendsOfItsFileOnReloadKeepingOpenSessionsAndTheListWhenTheFileIsBad(@TempDir Path dir)
            throws Exception {
        EchoBackend a = new EchoBackend("a");
        EchoBackend b = new EchoBackend("b");
        try {
            Path file = Files.writeString(dir.resolve("chat.backends"), a.start() + "\n");
            URI bUri = b.start();
            int port = serve("--route", "/chat/=@" + file);
            WebSocketRecorder onA = new WebSocketRecorder();
            WebSocket first = connect(port, "/chat/one", onA);
            first.sendText("hi", true).get(5, TimeUnit.SECONDS);
            assertThat(onA.nextText()).isEqualTo("a:/chat/one:hi");

            // The new list moved over the old one, as a deploy tool writes it; then what SIGHUP calls.
            Path next = Files.writeString(dir.resolve("next.backends"), "# a is retired\n" + bUri + "\n");
            Files.move(next, file, StandardCopyOption.REPLACE_EXISTING);
            launcher.reload();

            assertThat(echoOnce(port, "/chat/two")).isEqualTo("b:/chat/two:hi");
            first.sendText("still here", true).get(5, TimeUnit.SECONDS);
            assertThat(onA.nextText()).as("the open session stays on the backend taken out of the list")
                    .isEqualTo("a:/chat/one:still here");

            Files.writeString(file, "ftp://nowhere:21\n");
            launcher.reload();
            assertThat(echoOnce(port, "/chat/three")).as("after a reload of a broken file")
                    .isEqualTo("b:/chat/three:hi");
            assertThat(exitStatus).as("the launcher still runs").isNotDone();
        } finally {
            a.stop();
            b.stop();
        }
    }

    /**
     * A {@code SIGHUP} while the launcher starts the proxy, after it read a backend file that changes before the
     * proxy runs, is done once the proxy runs: the file is read again, once, however many came. (Before, each was
     * logged as "the proxy is not running" and dropped: the route kept the list of the file as it was first read.) The
     * file changes as the launcher writes its ready line, after its start read it; the reload that follows is waited
     * for.
     */
    @Test
    void readsTheBackendFilesAgainOnceTheProxyRunsForAReloadAskedForWhileItStarted(@TempDir Path dir)
            throws Exception {
        EchoBackend a = new EchoBackend("a");
        EchoBackend b = new EchoBackend("b");
        try {
            Path file = Files.writeString(dir.resolve("chat.backends"), a.start() + "\n");
            URI bUri = b.start();
            launcher.reload();
            launcher.reload();
            out.onReadyLine = () -> {
                try {
                    Files.writeString(file, bUri + "\n");
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            };

            int port = serve("--route", "/chat/=@" + file);

            await().atMost(TIMEOUT).untilAsserted(() -> assertThat(echoOnce(port, "/chat/one"))
                    .isEqualTo("b:/chat/one:hi"));
        } finally {
            a.stop();
            b.stop();
        }
    }

    @Test
    void keepsTheListOnAReloadThatBringsAWeightRoundRobinWouldIgnore(@TempDir Path dir) throws Exception {
        EchoBackend a = new EchoBackend("a");
        EchoBackend b = new EchoBackend("b");
        try {
            Path file = Files.writeString(dir.resolve("chat.backends"), a.start() + "\n");
            URI bUri = b.start();
            int port = serve("--balance", "round-robin", "--route", "/chat/=@" + file);

            Files.writeString(file, bUri + ";weight=2\n");
            launcher.reload();

            assertThat(echoOnce(port, "/chat/one")).isEqualTo("a:/chat/one:hi");
        } finally {
            a.stop();
            b.stop();
        }
    }

    @Test
    void aSecondLauncherWithReusePortListensOnTheSamePortAndServesOnceTheFirstStops() throws Exception {
        int port = serve("--reuse-port");
        WebSocketRecorder first = new WebSocketRecorder();
        connect(port, "/ws/first", first).sendText("hi", true).get(5, TimeUnit.SECONDS);
        assertThat(first.nextText()).isEqualTo("echo:/ws/first:hi");

        // The new version of a deploy: started on the same address before the old one is told to stop.
        ReadyLineOutput successorOut = new ReadyLineOutput();
        ByteArrayOutputStream successorErr = new ByteArrayOutputStream();
        Launcher successor = new Launcher(new PrintStream(successorOut, true, UTF_8),
                new PrintStream(successorErr, true, UTF_8), Map.of());
        CompletableFuture<Integer> successorExit = CompletableFuture.supplyAsync(() -> successor.run("--listen",
                "127.0.0.1:" + port, "--reuse-port", "--route", "/ws/=" + backendUri));
        try {
            CompletableFuture.anyOf(successorOut.readyLine, successorExit).get(TIMEOUT.toMillis(),
                    TimeUnit.MILLISECONDS);
            assertThat(successorOut.readyLine).as(() -> "the successor listens; its stderr: "
                    + successorErr.toString(UTF_8)).isDone();

            launcher.stop();
            assertThat(exitStatus.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)).isEqualTo(Launcher.EXIT_OK);
            serving = false;
            assertThat(first.awaitClose()).isEqualTo(1001);
            assertThat(echoOnce(port, "/ws/second")).as("served by the successor").isEqualTo("echo:/ws/second:hi");
            successor.stop();
            assertThat(successorExit.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)).isEqualTo(Launcher.EXIT_OK);
        } finally {
            successor.stop();
        }
    }

    /** Opens a session on {@code path}, sends {@code hi} and returns the echo. */
    private String echoOnce(int port, String path) throws Exception {
        WebSocketRecorder recorder = new WebSocketRecorder();
        connect(port, path, recorder).sendText("hi", true).get(5, TimeUnit.SECONDS);
        return recorder.nextText();
    }

    /** The subject of the certificate the proxy serves on {@code port}, read by a client that trusts any. */
    private static String servedSubject(int port) throws Exception {
        X509TrustManager anyCertificate = new X509TrustManager() {
            @Override
            public void checkClientTrusted(X509Certificate[] chain, String authType) {
            }

            @Override
            public void checkServerTrusted(X509Certificate[] chain, String authType) {
            }

            @Override
            public X509Certificate[] getAcceptedIssuers() {
                return new X509Certificate[0];
            }
        };
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, new TrustManager[] {anyCertificate}, null);
        try (SSLSocket socket = (SSLSocket) tls.getSocketFactory().createSocket("127.0.0.1", port)) {
            socket.setSoTimeout(5_000);
            socket.startHandshake();
            return ((X509Certificate) socket.getSession().getPeerCertificates()[0]).getSubjectX500Principal()
                    .getName();
        }
    }

    /** Opens a {@code wss://} session trusting the certificates of {@code trusted}, and checks that it echoes. */
    private void assertEchoesOverWss(int port, KeyStore trusted) throws Exception {
        assertEchoesOverWss(port, trusted, null);
    }

    /**
     * Opens a {@code wss://} session trusting the certificates of {@code trusted} and presenting the key and chain of
     * {@code presented} ({@code null}: none), and checks that it echoes.
     */
    private void assertEchoesOverWss(int port, KeyStore trusted, KeyStore presented) throws Exception {
        WebSocketRecorder recorder = new WebSocketRecorder();
        WebSocket socket = HttpClient.newBuilder().sslContext(tls(trusted, presented)).build().newWebSocketBuilder()
                .buildAsync(URI.create("wss://127.0.0.1:" + port + "/ws/tls"), recorder).get(5, TimeUnit.SECONDS);
        openSockets.add(socket);
        socket.sendText("secure", true).get(5, TimeUnit.SECONDS);
        assertThat(recorder.nextText()).isEqualTo("echo:/ws/tls:secure");
    }

    /**
     * What a client that trusts {@code trusted} and presents {@code presented} ({@code null}: no certificate) reads
     * after its TLS handshake with the proxy: the message of the TLS failure. (With TLS 1.3 the client's handshake
     * completes before the proxy has checked its certificate, so the refusal, a fatal alert, comes at the first read;
     * a client that writes its certificate apart from the rest of its handshake, as JDK 25 does, may instead find the
     * connection closed under its next write. An accepted client reads nothing, as the proxy awaits a request, and
     * fails here with a timeout.)
     */
    private static String tlsRefusal(int port, KeyStore trusted, KeyStore presented) throws Exception {
        try (SSLSocket socket = (SSLSocket) tls(trusted, presented).getSocketFactory().createSocket("127.0.0.1",
                port)) {
            socket.setSoTimeout(10_000);
            socket.startHandshake();
            return "read " + socket.getInputStream().read();
        } catch (SSLException refused) {
            return refused.getMessage();
        } catch (SocketException closed) {
            return "closed in the TLS handshake: " + closed.getMessage();
        }
    }

    /** A TLS context that trusts the certificates of {@code trusted} and presents {@code presented} (null: none). */
    private static SSLContext tls(KeyStore trusted, KeyStore presented) throws Exception {
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(trusted);
        KeyManager[] keys = null;
        if (presented != null) {
            KeyManagerFactory keyManagers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            keyManagers.init(presented, PASSWORD.toCharArray());
            keys = keyManagers.getKeyManagers();
        }
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(keys, trust.getTrustManagers(), null);
        return tls;
    }

    @Test
    void requiresAClientCertificateIssuedByTheClientCa(@TempDir Path dir) throws Exception {
        Path keyStore = keyStore(dir);
        Path clientCa = clientCa(dir);
        KeyStore alice = clientCertificate(dir, "alice");
        // Self-signed under the client CA's name, not issued by it: a JDK client sends a certificate only when its
        // chain names an issuer the proxy asks for (the client CA), so one from any other CA would not be sent at all.
        Path impostorStore = selfSigned(dir.resolve("impostor.p12"), "impostor", "CN=client-ca", "EKU=clientAuth");
        KeyStore impostor = KeyStore.getInstance(impostorStore.toFile(), PASSWORD.toCharArray());
        int port = serve("--tls-keystore", keyStore.toString(), "--tls-password-env", PASSWORD_VARIABLE,
                "--tls-client-ca", clientCa.toString());
        KeyStore served = KeyStore.getInstance(keyStore.toFile(), PASSWORD.toCharArray());

        assertEchoesOverWss(port, served, alice);
        // A fatal alert: bad_certificate from JDK 17 for none, certificate_required from later ones (which prefix the
        // message with it); certificate_unknown for a certificate sent that does not verify.
        assertThat(tlsRefusal(port, served, null)).as("no certificate").contains("Received fatal alert: ")
                .containsAnyOf("bad_certificate", "certificate_required");
        assertThat(tlsRefusal(port, served, impostor)).as("self-signed, sent and not verified")
                .containsAnyOf("Received fatal alert: certificate_unknown", "closed in the TLS handshake");
    }

    @Test
    void readsTheClientCaAgainOnReloadAndKeepsTheOldOneWhenTheNewFileIsBad(@TempDir Path dir) throws Exception {
        Path keyStore = keyStore(dir);
        Path clientCa = clientCa(dir);
        KeyStore alice = clientCertificate(dir, "alice");
        // At first the file holds another certificate only (the proxy's own): alice's CA is not trusted yet.
        Path trusted = Files.copy(pem(keyStore, "proxy"), dir.resolve("trusted-clients.pem"));
        int port = serve("--tls-keystore", keyStore.toString(), "--tls-password-env", PASSWORD_VARIABLE,
                "--tls-client-ca", trusted.toString());
        KeyStore served = KeyStore.getInstance(keyStore.toFile(), PASSWORD.toCharArray());
        assertThat(tlsRefusal(port, served, alice)).as("before her CA is trusted").contains("Received fatal alert: ");

        // The new file moved over the old one, as a deploy hook does; then what SIGHUP calls.
        Files.move(Files.copy(clientCa, dir.resolve("new-trusted-clients.pem")), trusted,
                StandardCopyOption.REPLACE_EXISTING);
        launcher.reloadTls();
        assertEchoesOverWss(port, served, alice);

        Files.writeString(trusted, "-----BEGIN CERTIFICATE-----\nhalf");
        launcher.reloadTls();
        assertEchoesOverWss(port, served, alice);
        assertThat(tlsRefusal(port, served, null)).as("after a reload of a broken file, still required")
                .contains("Received fatal alert: ");
        assertThat(exitStatus).as("the launcher still runs").isNotDone();
    }

    @Test
    void exits2NamingTheFlagWhenTheClientCaCannotBeReadOrComesWithoutTheKeyStore(@TempDir Path dir)
            throws Exception {
        Path keyStore = keyStore(dir);
        Path missing = dir.resolve("missing-ca.pem");
        Path notACertificate = Files.writeString(dir.resolve("ca.pem"), "not a certificate");
        List<String> withKeyStore = List.of("--listen", "127.0.0.1:0", "--route", "/ws/=ws://127.0.0.1:3000",
                "--tls-keystore", keyStore.toString(), "--tls-password-env", PASSWORD_VARIABLE);

        for (Path clientCa : List.of(missing, notACertificate)) {
            List<String> args = new ArrayList<>(withKeyStore);
            args.addAll(List.of("--tls-client-ca", clientCa.toString()));
            assertThat(launcher.run(args.toArray(new String[0]))).as("%s", clientCa).isEqualTo(Launcher.EXIT_USAGE);
        }
        assertThat(launcher.run("--listen", "127.0.0.1:0", "--route", "/ws/=ws://127.0.0.1:3000", "--tls-client-ca",
                notACertificate.toString())).isEqualTo(Launcher.EXIT_USAGE);

        assertThat(out.toString(UTF_8)).isEmpty();
        List<String> lines = err.toString(UTF_8).lines().toList();
        assertThat(lines).hasSize(6);
        assertThat(lines.get(0)).startsWith("wsproxy: --tls-client-ca: trustStore: " + missing + " (expected: ");
        assertThat(lines.get(2)).startsWith("wsproxy: --tls-client-ca: trustStore: " + notACertificate
                + " (expected: ");
        assertThat(lines.get(4)).isEqualTo("wsproxy: --tls-client-ca: given without --tls-keystore");
        assertThat(List.of(lines.get(1), lines.get(3), lines.get(5))).containsOnly(Launcher.USAGE_HINT);
    }

    @Test
    void exits2NamingTheFlagWhenTheKeyStorePasswordIsWrong(@TempDir Path dir) throws Exception {
        Path keyStore = keyStore(dir);
        Launcher wrongPassword = new Launcher(new PrintStream(out, true, UTF_8), new PrintStream(err, true, UTF_8),
                Map.of(PASSWORD_VARIABLE, "not-the-password"));

        int status = wrongPassword.run("--listen", "127.0.0.1:0", "--route", "/ws/=ws://127.0.0.1:3000",
                "--tls-keystore", keyStore.toString(), "--tls-password-env", PASSWORD_VARIABLE);

        assertThat(status).isEqualTo(Launcher.EXIT_USAGE);
        assertThat(err.toString(UTF_8)).startsWith("wsproxy: --tls-keystore: keyStore: " + keyStore)
                .contains("wrong password").doesNotContain("not-the-password");
        // Followed by the hint, as every other error: it was missing for store errors alone.
        assertThat(err.toString(UTF_8).lines()).hasSize(2).last().isEqualTo(Launcher.USAGE_HINT);
        assertThat(out.toString(UTF_8)).isEmpty();
    }

    /** A PKCS#12 key store for 127.0.0.1, made by keytool in {@code dir}. */
    private static Path keyStore(Path dir) throws Exception {
        return keyStore(dir, "CN=localhost");
    }

    /** A PKCS#12 key store for 127.0.0.1 whose certificate's subject is {@code subject}, made by keytool in {@code dir}. */
    private static Path keyStore(Path dir, String subject) throws Exception {
        return selfSigned(dir.resolve("proxy.p12"), "proxy", subject, "SAN=dns:localhost,ip:127.0.0.1");
    }

    /** A PKCS#12 key store at {@code keyStore} with one self-signed certificate valid for two days, made by keytool. */
    private static Path selfSigned(Path keyStore, String alias, String subject, String extension) throws Exception {
        keytool("-genkeypair", "-alias", alias, "-keyalg", "EC", "-groupname", "secp256r1", "-dname", subject,
                "-ext", extension, "-validity", "2", "-keystore", keyStore.toString(), "-storetype", "PKCS12",
                "-storepass", PASSWORD);
        return keyStore;
    }

    /** The certificate of {@code alias} in {@code keyStore}, written in PEM next to it. */
    private static Path pem(Path keyStore, String alias) throws Exception {
        Path pem = keyStore.resolveSibling(alias + ".pem");
        keytool("-exportcert", "-rfc", "-alias", alias, "-keystore", keyStore.toString(), "-storepass", PASSWORD,
                "-file", pem.toString());
        return pem;
    }

    /** A CA for client certificates, {@code CN=client-ca}, made in {@code dir}: its certificate in PEM. */
    private static Path clientCa(Path dir) throws Exception {
        return pem(selfSigned(dir.resolve("client-ca.p12"), "client-ca", "CN=client-ca", "bc:c"), "client-ca");
    }

    /**
     * A client certificate {@code CN=name} for TLS client authentication, valid for two days, issued by the
     * {@link #clientCa} made in {@code dir}: a key store with its key and the chain (its certificate, the CA's).
     */
    private static KeyStore clientCertificate(Path dir, String name) throws Exception {
        Path keyStore = dir.resolve(name + ".p12");
        Path request = dir.resolve(name + ".csr");
        Path issued = dir.resolve(name + "-issued.pem");
        selfSigned(keyStore, name, "CN=" + name, "EKU=clientAuth");
        keytool("-certreq", "-alias", name, "-keystore", keyStore.toString(), "-storepass", PASSWORD, "-file",
                request.toString());
        keytool("-gencert", "-alias", "client-ca", "-keystore", dir.resolve("client-ca.p12").toString(), "-storepass",
                PASSWORD, "-infile", request.toString(), "-outfile", issued.toString(), "-rfc", "-validity", "2",
                "-ext", "EKU=clientAuth");
        keytool("-importcert", "-noprompt", "-alias", "client-ca", "-file", dir.resolve("client-ca.pem").toString(),
                "-keystore", keyStore.toString(), "-storepass", PASSWORD);
        keytool("-importcert", "-alias", name, "-file", issued.toString(), "-keystore", keyStore.toString(),
                "-storepass", PASSWORD);
        return KeyStore.getInstance(keyStore.toFile(), PASSWORD.toCharArray());
    }

    private static void keytool(String... arguments) throws Exception {
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "keytool").toString()));
        command.addAll(List.of(arguments));
        Process keytool = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(keytool.getInputStream().readAllBytes(), UTF_8);
        assertThat(keytool.waitFor(60, TimeUnit.SECONDS)).as("keytool finished").isTrue();
        assertThat(keytool.exitValue()).as("keytool: %s", output).isZero();
    }

    /**
     * Writes the key and certificate of {@link #keyStore} to a PKCS#12 store at {@code target} whose password is
     * empty (keytool refuses one shorter than 6 characters; the JDK's KeyStore writes it as openssl does).
     */
    private static Path withEmptyPassword(Path source, Path target) throws Exception {
        KeyStore original = KeyStore.getInstance(source.toFile(), PASSWORD.toCharArray());
        KeyStore empty = KeyStore.getInstance("PKCS12");
        empty.load(null, null);
        empty.setKeyEntry("proxy", original.getKey("proxy", PASSWORD.toCharArray()), new char[0],
                original.getCertificateChain("proxy"));
        try (OutputStream file = Files.newOutputStream(target)) {
            empty.store(file, new char[0]);
        }
        return target;
    }

    @Test
    void closesAConnectionThatStallsItsHandshakeAtTheHandshakeTimeout() throws Exception {
        int port = serve("--handshake-timeout", "1s");
        // Before the connect: the proxy's timer starts when it accepts, which may come before the connect returns here.
        long opened = System.nanoTime();
        try (Socket stalled = new Socket("127.0.0.1", port)) {
            stalled.setSoTimeout((int) TIMEOUT.toMillis());
            stalled.getOutputStream().write("GET /ws/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webs"
                    .getBytes(UTF_8));
            WebSocketRecorder served = new WebSocketRecorder();
            connect(port, "/ws/fast", served).sendText("hello", true).get(5, TimeUnit.SECONDS);
            assertThat(served.nextText()).as("a real client meanwhile").isEqualTo("echo:/ws/fast:hello");

            assertThat(stalled.getInputStream().read()).as("end of the stalled connection").isEqualTo(-1);
            assertThat(Duration.ofNanos(System.nanoTime() - opened)).as("lifetime: 1s, well before the default 10s")
                    .isGreaterThanOrEqualTo(Duration.ofSeconds(1)).isLessThan(Duration.ofSeconds(5));
        }
    }

    @Test
    void closesTheOldestWaitingConnectionBeyondMaxPendingHandshakes() throws Exception {
        int port = serve("--max-pending-handshakes", "1", "--handshake-timeout", "1m");
        try (Socket first = stalledSocket(port); Socket second = stalledSocket(port)) {
            CompletableFuture<Integer> firstEnd = CompletableFuture.supplyAsync(() -> readOne(first));
            CompletableFuture<Integer> secondEnd = CompletableFuture.supplyAsync(() -> readOne(second));
            // Whichever the proxy saw first makes room for the other at once, not at a handshake timeout.
            assertThat(CompletableFuture.anyOf(firstEnd, secondEnd).get(5, TimeUnit.SECONDS))
                    .as("end of the older stalled connection").isEqualTo(-1);
            assertThat(firstEnd.isDone() && secondEnd.isDone()).as("both closed").isFalse();

            // A real client now makes room in the same way, and is served.
            WebSocketRecorder served = new WebSocketRecorder();
            connect(port, "/ws/fast", served).sendText("hello", true).get(5, TimeUnit.SECONDS);
            assertThat(served.nextText()).isEqualTo("echo:/ws/fast:hello");
            assertThat(firstEnd.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)).isEqualTo(-1);
            assertThat(secondEnd.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)).isEqualTo(-1);
        }
    }

    @Test
    void letsClientAndBackendAgreeOnDeflateWithCompressionPassThroughOnly() throws Exception {
        int port = serve("--compression-pass-through");
        assertThat(upgradeResponseHead(port)).as("the echo backend's answer, relayed")
                .containsIgnoringCase("Sec-WebSocket-Extensions: permessage-deflate");
    }

    @Test
    void negotiatesNoExtensionWithoutCompressionPassThrough() throws Exception {
        int port = serve();
        assertThat(upgradeResponseHead(port)).startsWith("HTTP/1.1 101").doesNotContainIgnoringCase("Extensions");
    }

    /** The head of the proxy's answer to an upgrade that offers permessage-deflate, as browsers do. */
    private static String upgradeResponseHead(int port) throws Exception {
        try (Socket socket = new Socket("127.0.0.1", port)) {
            socket.setSoTimeout((int) TIMEOUT.toMillis());
            socket.getOutputStream().write(("GET /ws/deflate HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    + "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").getBytes(UTF_8));
            StringBuilder head = new StringBuilder();
            while (head.indexOf("\r\n\r\n") < 0) {
                int b = socket.getInputStream().read();
                if (b < 0) {
                    break;
                }
                head.append((char) b);
            }
            return head.toString();
        }
    }

    /** Opens a connection that sends the start of a request head and no more. */
    private static Socket stalledSocket(int port) throws Exception {
        Socket socket = new Socket("127.0.0.1", port);
        socket.setSoTimeout((int) TIMEOUT.toMillis());
        socket.getOutputStream().write("GET /ws/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n".getBytes(UTF_8));
        return socket;
    }

    /** Reads one byte; -1 at the end of the stream or on a reset. */
    private static int readOne(Socket socket) {
        try {
            return socket.getInputStream().read();
        } catch (java.net.SocketTimeoutException e) {
            throw new AssertionError("still open after " + TIMEOUT, e);
        } catch (java.io.IOException reset) {
            return -1;
        }
    }

    /**
     * Runs the launcher on its own thread in front of a new echo backend, with a route {@code /ws/} to it, listening
     * on a free port, and these flags; returns the port from the ready line once it is printed.
     */
    private int serve(String... flags) throws Exception {
        backend = new EchoBackend("echo");
        backendUri = backend.start();
        List<String> args = new ArrayList<>(List.of("--listen", "127.0.0.1:0", "--route", "/ws/=" + backendUri));
        args.addAll(List.of(flags));
        Thread thread = new Thread(() -> {
            try {
                exitStatus.complete(launcher.run(args.toArray(new String[0])));
            } catch (Throwable t) {
                exitStatus.completeExceptionally(t);
            }
        }, "launcher-under-test");
        thread.setDaemon(true);
        serving = true;
        thread.start();

        CompletableFuture.anyOf(out.readyLine, exitStatus).get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(out.readyLine).as(() -> "ready line; stderr: " + err.toString(UTF_8)).isDone();
        String line = out.readyLine.join();
        Matcher listening = LISTENING.matcher(line);
        assertThat(listening.matches()).as("stdout '%s' matches %s", line, LISTENING).isTrue();
        scheme = listening.group(1);
        return Integer.parseInt(listening.group(2));
    }

    private WebSocket connect(int port, String path, WebSocketRecorder recorder, String... headers) throws Exception {
        WebSocket socket = builder(headers).buildAsync(uri(port, path), recorder).get(5, TimeUnit.SECONDS);
        openSockets.add(socket);
        return socket;
    }

    /** Attempts a handshake that the proxy must refuse, and returns the proxy's answer. */
    private HttpResponse<?> refusedHandshake(int port, String path, String... headers) throws Exception {
        CompletableFuture<WebSocket> attempt = builder(headers).buildAsync(uri(port, path), new WebSocketRecorder());
        try {
            WebSocket unexpected = attempt.get(5, TimeUnit.SECONDS);
            openSockets.add(unexpected);
            throw new AssertionError("the handshake to " + path + " was accepted");
        } catch (ExecutionException e) {
            assertThat(e.getCause()).isInstanceOf(WebSocketHandshakeException.class);
            return ((WebSocketHandshakeException) e.getCause()).getResponse();
        }
    }

    private WebSocket.Builder builder(String... headers) {
        WebSocket.Builder builder = http.newWebSocketBuilder();
        for (int i = 0; i < headers.length; i += 2) {
            builder.header(headers[i], headers[i + 1]);
        }
        return builder;
    }

    private static URI uri(int port, String path) {
        return URI.create("ws://127.0.0.1:" + port + path);
    }

    /** Collects stdout and completes {@link #readyLine} with it once a whole line was written. */
    private static final class ReadyLineOutput extends ByteArrayOutputStream {
        final CompletableFuture<String> readyLine = new CompletableFuture<>();
        /** Run by the launcher's thread as it writes its ready line, the proxy running, before it goes on. */
        volatile Runnable onReadyLine = () -> { };

        @Override
        public synchronized void write(int b) {
            super.write(b);
            if (b == '\n') {
                ready();
            }
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            super.write(b, off, len);
            for (int i = off; i < off + len; i++) {
                if (b[i] == '\n') {
                    ready();
                    return;
                }
            }
        }

        private void ready() {
            if (!readyLine.isDone()) {
                onReadyLine.run();
            }
            readyLine.complete(toString(UTF_8));
        }
    }
}
