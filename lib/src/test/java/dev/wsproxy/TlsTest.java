package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystem;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;

import javax.crypto.spec.SecretKeySpec;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.SecureRequestCustomizer;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.websocket.api.exceptions.UpgradeException;
import org.eclipse.jetty.websocket.client.ClientUpgradeRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * TLS on both legs (matrix rows S1 to S3): {@code wss://} clients with the proxy's key store, TLS 1.2 as the floor,
 * {@code X-Forwarded-Proto: https}; {@code wss://} backends verified by certificate and host name, with a trust store,
 * a client certificate, or (for development) no verification; every verification failure is a {@code 502} and no
 * request reaches the backend; never a fallback to plain text. The certificates are made by {@link TestCertificates}.
 */
class TlsTest {

    private final List<AutoCloseable> resources = new ArrayList<>();
    private final RecordingListener listener = new RecordingListener();
    private WebSocketProxy proxy;
    private Clients clients;

    @AfterEach
    void tearDown() throws Exception {
        Clients.tearDown(proxy, clients, resources.toArray(AutoCloseable[]::new));
    }

    private TestBackend backend(String id, SslContextFactory.Server tls) throws Exception {
        TestBackend backend = new TestBackend(id, tls);
        resources.add(backend);
        return backend;
    }

    /**
     * Starts a proxy with the test certificate on its listener ({@code wss://}), set up further by {@code settings},
     * routing {@code /} to a plain backend, which it returns.
     */
    private TestBackend startTlsProxy(UnaryOperator<ProxyBuilder> settings) throws Exception {
        TestBackend backend = backend("plain", null);
        startProxy(settings.apply(ProxyBuilder.create()
                .tls(ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD)))
                .route("/", backend.backend()));
        return backend;
    }

    private void startProxy(ProxyBuilder builder) throws Exception {
        proxy = builder.listen("127.0.0.1", 0).listener(listener).build();
        proxy.start();
    }

    /** The status of the client's upgrade: {@code 101} when it succeeded (the session is then closed). */
    private int upgradeStatus(String pathQuery) throws Exception {
        WsRecorder recorder = new WsRecorder();
        try {
            clients.client.connect(recorder, new ClientUpgradeRequest(Clients.ws(proxy, pathQuery)))
                    .get(10, TimeUnit.SECONDS).close();
            recorder.nextClose();
            return 101;
        } catch (ExecutionException e) {
            assertThat(e.getCause()).isInstanceOf(UpgradeException.class);
            return ((UpgradeException) e.getCause()).getResponseStatusCode();
        }
    }

    // ---- the client leg ----

    @Test
    void servesWssClientsAndTellsBackendsTheClientUsedHttps() throws Exception {
        TestBackend backend = startTlsProxy(builder -> builder);
        clients = new Clients(TestCertificates.LOCALHOST.trustingClient());

        assertThat(proxy.uri().getScheme()).isEqualTo("https");
        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/chat"));
        recorder.sendText("over tls");
        assertThat(recorder.nextText()).isEqualTo("over tls");
        assertThat(backend.nextUpgrade().header("X-Forwarded-Proto")).isEqualTo("https");
        recorder.session.close();
        recorder.nextClose();
    }

    @Test
    void sameOriginOnATlsListenerMeansTheHttpsOrigin() throws Exception {
        TestBackend backend = startTlsProxy(builder -> builder.originValidator(OriginValidator.sameOrigin()));
        String authority = proxy.uri().getRawAuthority();
        try (RawHttp https = RawHttp.over(tlsSocket(null))) {
            assertThat(https.exchange(RawHttp.Request.upgrade("/", authority).add("Origin", "http://" + authority))
                    .status()).isEqualTo(403);
        }
        clients = new Clients(TestCertificates.LOCALHOST.trustingClient());
        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/"), Map.of("Origin", "https://" + authority));
        recorder.session.close();
        recorder.nextClose();
    }

    @Test
    void refusesAHostTheServedCertificateDoesNotNameWithAnAccessLine() throws Exception {
        // Jetty's SecureRequestCustomizer refuses it before the proxy runs: it had no access line.
        TestBackend backend = startTlsProxy(builder -> builder);
        try (StandardError.Capture log = StandardError.capture();
                RawHttp https = RawHttp.over(tlsSocket(null))) {
            RawHttp.Response response = https.exchange(RawHttp.Request.upgrade("/chat", "other.example"));

            assertThat(response.status()).as("%s", response).isEqualTo(400);
            assertThat(response.bodyText()).isEqualTo("400 Bad Request\n");
            assertThat(log.text().lines().filter(line -> line.contains(" dev.wsproxy.access - ")))
                    .singleElement().satisfies(line -> assertThat(line).matches(".* dev\\.wsproxy\\.access - sid=- "
                            + "client=127\\.0\\.0\\.1 route=- backend=- duration_ms=\\d+ method=GET status=400 "
                            + "reason=invalid_sni"));
        }
        assertThat(backend.upgrades).isEmpty();
    }

    @Test
    void speaksTls13And12AndRefusesOlderProtocolsWithAnAlert() throws Exception {
        TestBackend backend = startTlsProxy(builder -> builder);
        for (String protocol : List.of("TLSv1.3", "TLSv1.2")) {
            try (SSLSocket socket = tlsSocket(protocol)) {
                socket.startHandshake();
                assertThat(socket.getSession().getProtocol()).isEqualTo(protocol);
            }
        }
        // The JDK's own client no longer offers TLS 1.0 or 1.1, so the ClientHellos are written by hand.
        for (int minor : new int[] {1, 2}) {
            try (Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
                socket.setSoTimeout(10_000);
                socket.getOutputStream().write(clientHello(minor));
                byte[] alert = socket.getInputStream().readNBytes(7);
                // A fatal protocol_version alert (70), not a ServerHello (a handshake record, 0x16).
                assertThat(alert).hasSize(7);
                assertThat(alert[0]).as("record type").isEqualTo((byte) 0x15);
                assertThat(alert[5]).as("alert level").isEqualTo((byte) 2);
                assertThat(alert[6]).as("alert description").isEqualTo((byte) 70);
            }
        }
    }

    @Test
    void seesTheTlsOfTheUsersOwnConnectorWhenMounted() throws Exception {
        TestBackend backend = backend("plain", null);
        WebSocketProxy mounted = ProxyBuilder.create()
                .originValidator(OriginValidator.sameOrigin())
                .route("/", backend.backend())
                .build();
        Server server = new Server();
        HttpConfiguration http = new HttpConfiguration();
        http.addCustomizer(new SecureRequestCustomizer());
        ServerConnector connector = new ServerConnector(server, TestCertificates.LOCALHOST.server(),
                new HttpConnectionFactory(http));
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(mounted.handler());
        server.start();
        resources.add(server::stop);
        clients = new Clients(TestCertificates.LOCALHOST.trustingClient());
        String authority = "127.0.0.1:" + connector.getLocalPort();

        WsRecorder recorder = clients.connect(URI.create("wss://" + authority + "/mounted"),
                Map.of("Origin", "https://" + authority));

        assertThat(backend.nextUpgrade().header("X-Forwarded-Proto")).isEqualTo("https");
        recorder.session.close();
        recorder.nextClose();
        Clients.assertNoLeaks(mounted, clients, backend);
        clients.close();
        clients = null;
    }

    @Test
    void warnsThatTlsIsIgnoredWhenMountedAndOnlyThen() throws Exception {
        // The setting reads as "encrypted"; mounted in a server with a plain connector, it was dropped without a word.
        ServerTls tls = ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD);
        WebSocketProxy mounted = ProxyBuilder.create().tls(tls).route("/", Backend.of("ws://127.0.0.1:1")).build();
        Server server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(mounted.handler());
        resources.add(server::stop);

        String logged = StandardError.of(server::start);
        String standalone = StandardError.of(() -> startTlsProxy(builder -> builder));

        assertThat(logged.lines().filter(line -> line.contains("WARN")))
                .singleElement().asString().contains("tls(" + tls + ") is ignored").contains("mounted");
        assertThat(standalone).doesNotContain("is ignored");
    }

    @Test
    void closesASlowTlsHandshakeAtTheHandshakeTimeout() throws Exception {
        TestBackend backend = startTlsProxy(builder -> builder.handshakeTimeout(Duration.ofSeconds(1)));
        long opened = System.nanoTime(); // before the connect: the proxy's timer starts at its accept
        try (Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
            socket.setSoTimeout(20_000);
            // The first bytes of a ClientHello, and no more (matrix S1: a slow ClientHello).
            socket.getOutputStream().write(Arrays.copyOf(clientHello(3), 10));

            // Closed: at most an alert, never a ServerHello (a handshake record).
            assertThat(readUntilClosed(socket.getInputStream())).doesNotStartWith("\u0016");
            assertThat(Duration.ofNanos(System.nanoTime() - opened)).as("open until the 1 s deadline, not Jetty's "
                    + "30 s idle timeout").isGreaterThanOrEqualTo(Duration.ofSeconds(1)).isLessThan(Duration.ofSeconds(10));
        }
        assertThat(backend.httpConnections.get()).isZero();
    }

    @Test
    void disconnectsATls12ClientThatAsksToRenegotiate() throws Exception {
        TestBackend backend = startTlsProxy(builder -> builder);
        String authority = proxy.uri().getRawAuthority();
        byte[] request = RawHttp.Request.plain("GET", "/plain", authority).add("Connection", "close").bytes();
        try (SSLSocket socket = tlsSocket("TLSv1.2")) {
            socket.startHandshake();
            socket.getOutputStream().write(request);
            assertThat(readUntilClosed(socket.getInputStream())).as("without renegotiation").startsWith("HTTP/1.1 200");
        }
        try (SSLSocket socket = tlsSocket("TLSv1.2")) {
            socket.startHandshake();
            socket.startHandshake(); // on an established TLS 1.2 session: a new ClientHello, a renegotiation

            try {
                socket.getOutputStream().write(request);
            } catch (IOException closedWhileWriting) {
                // The proxy may have closed already: a refusal too.
            }
            assertThat(readUntilClosed(socket.getInputStream())).as("after asking to renegotiate").isEmpty();
        }
    }

    @Test
    void warnsAtStartAboutAServedOrClientCertificateThatHasExpired() throws Exception {
        KeyStore store = KeyStore.getInstance(TestCertificates.EXPIRED.keyStore().toFile(),
                TestCertificates.PASSWORD.toCharArray());
        Instant notAfter = ((X509Certificate) store.getCertificate("expired")).getNotAfter().toInstant();
        TestBackend backend = backend("plain", null);

        String logged = StandardError.of(() -> startProxy(ProxyBuilder.create()
                .tls(ServerTls.keyStore(TestCertificates.EXPIRED.keyStore(), TestCertificates.PASSWORD))
                .backendTls(BackendTls.trustStore(TestCertificates.LOCALHOST.pem())
                        .withClientCertificate(TestCertificates.EXPIRED.keyStore(), TestCertificates.PASSWORD))
                .route("/", backend.backend())));

        List<String> warnings = logged.lines().filter(line -> line.contains("WARN")).toList();
        assertThat(warnings).hasSize(2).allSatisfy(line -> assertThat(line)
                .contains(TestCertificates.EXPIRED.keyStore().toString()).contains("expired on " + notAfter));
        assertThat(warnings).anySatisfy(line -> assertThat(line).contains("ServerTls.keyStore("))
                .anySatisfy(line -> assertThat(line).contains("withClientCertificate("));
        proxy.close();
        String valid = StandardError.of(() -> startTlsProxy(builder -> builder));
        assertThat(valid).doesNotContain("expired");
    }

    @Test
    void warnsAtStartAndReloadAboutAnExpiredCaInTheChainOfAServedOrClientCertificate() throws Exception {
        // A valid certificate whose issuing CA, sent with it, has expired: every client refuses the chain, and only the
        // key's own certificate was looked at, so nothing in the log said why.
        Path chain = TestCertificates.ExpiredIssuer.CHAIN.keyStore();
        X509Certificate issuer = (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(Files.newInputStream(TestCertificates.ExpiredIssuer.CHAIN.pem()));
        String expiredOn = "certificate 2 of 2 of the chain of 'renewed' (CN=old-ca) expired on "
                + issuer.getNotAfter().toInstant();
        TestBackend backend = backend("plain", null);

        String logged = StandardError.of(() -> startProxy(ProxyBuilder.create()
                .tls(ServerTls.keyStore(chain, TestCertificates.PASSWORD))
                .backendTls(BackendTls.trustStore(TestCertificates.LOCALHOST.pem())
                        .withClientCertificate(chain, TestCertificates.PASSWORD))
                .route("/", backend.backend())));
        String reloaded = StandardError.of(proxy::reloadTls);

        for (String log : List.of(logged, reloaded)) {
            List<String> warnings = log.lines().filter(line -> line.contains("WARN")).toList();
            assertThat(warnings).hasSize(2).allSatisfy(line -> assertThat(line).contains(chain.toString())
                    .contains(expiredOn).contains("clients refuse the whole chain"));
            assertThat(warnings).anySatisfy(line -> assertThat(line).contains("ServerTls.keyStore("))
                    .anySatisfy(line -> assertThat(line).contains("withClientCertificate("));
        }
    }

    @Test
    void warnsAtStartAndReloadAboutATrustedCertificateThatHasExpired(@TempDir Path dir) throws Exception {
        // The JDK does not check the dates of a trusted certificate, so a trust store that kept an expired CA (or an
        // expired certificate trusted as itself) failed nothing and was never mentioned, where OpenSSL refuses.
        KeyStore store = KeyStore.getInstance(TestCertificates.EXPIRED.keyStore().toFile(),
                TestCertificates.PASSWORD.toCharArray());
        X509Certificate expired = (X509Certificate) store.getCertificate("expired");
        Path trusted = Files.writeString(dir.resolve("trusted.pem"), "-----BEGIN CERTIFICATE-----\n"
                + java.util.Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(expired.getEncoded())
                + "\n-----END CERTIFICATE-----\n");
        String expiredOn = "(CN=expired) expired on " + expired.getNotAfter().toInstant();
        TestBackend backend = backend("plain", null);

        String logged = StandardError.of(() -> startProxy(ProxyBuilder.create()
                .tls(ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD)
                        .withClientCertificates(trusted))
                .backendTls(BackendTls.trustStore(trusted))
                .route("/", backend.backend())));
        String reloaded = StandardError.of(proxy::reloadTls);

        for (String log : List.of(logged, reloaded)) {
            List<String> warnings = log.lines().filter(line -> line.contains("WARN")).toList();
            assertThat(warnings).hasSize(2).allSatisfy(line -> assertThat(line).contains(trusted.toString())
                    .contains("the trusted certificate").contains(expiredOn));
            assertThat(warnings).anySatisfy(line -> assertThat(line).contains("withClientCertificates("))
                    .anySatisfy(line -> assertThat(line).contains("BackendTls.trustStore("));
        }
        proxy.close();
        // A server factory's trust store is used only when it asks clients for certificates.
        Path unused = dir.resolve("unused-trust.p12");
        KeyStore unusedStore = KeyStore.getInstance("PKCS12");
        unusedStore.load(null, null);
        unusedStore.setCertificateEntry("expired", expired);
        try (OutputStream out = Files.newOutputStream(unused)) {
            unusedStore.store(out, TestCertificates.PASSWORD.toCharArray());
        }
        String quiet = StandardError.of(() -> startTlsProxy(builder -> builder.tls(ServerTls.custom(() -> {
            SslContextFactory.Server factory = TestCertificates.LOCALHOST.server();
            factory.setTrustStorePath(unused.toString());
            factory.setTrustStorePassword(TestCertificates.PASSWORD);
            return factory;
        }))));
        assertThat(quiet).doesNotContain("expired");
    }

    @Test
    void neverSpeaksTlsBelow12EvenWithACustomFactoryThatAsksForIt() {
        ServerTls server = ServerTls.custom(() -> {
            SslContextFactory.Server factory = TestCertificates.LOCALHOST.server();
            factory.setIncludeProtocols("TLSv1", "TLSv1.1", "TLSv1.2");
            return factory;
        });
        assertThat(server.newSslContextFactory().getExcludeProtocols()).contains("TLSv1", "TLSv1.1");
        BackendTls backend = BackendTls.custom(() -> {
            SslContextFactory.Client factory = new SslContextFactory.Client();
            factory.setIncludeProtocols("TLSv1.1", "TLSv1.2");
            return factory;
        });
        assertThat(backend.newSslContextFactory().getExcludeProtocols()).contains("TLSv1", "TLSv1.1");
        assertThat(BackendTls.systemTrust().newSslContextFactory().getExcludeProtocols()).contains("TLSv1", "TLSv1.1");
    }

    @Test
    void closesPlainTextAndGarbageOnTheTlsPortAndKeepsServing() throws Exception {
        TestBackend backend = startTlsProxy(builder -> builder);
        String authority = proxy.uri().getRawAuthority();
        byte[] garbage = new byte[4096];
        new java.util.Random(7).nextBytes(garbage);
        garbage[0] = 0x16; // looks like a handshake record, then nonsense
        for (byte[] bytes : List.of(RawHttp.Request.upgrade("/", authority).bytes(), garbage)) {
            try (Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
                socket.setSoTimeout(20_000);
                long start = System.nanoTime();
                OutputStream out = socket.getOutputStream();
                try {
                    out.write(bytes);
                } catch (IOException closedWhileWriting) {
                    // The proxy may close before it has read everything: that is a refusal too.
                }
                assertThat(readUntilClosed(socket.getInputStream())).as("bytes before the close")
                        .doesNotContain("HTTP/1.1 101").doesNotContain("Sec-WebSocket-Accept");
                assertThat(Duration.ofNanos(System.nanoTime() - start))
                        .as("closed on what came, long before the 10 s handshake deadline")
                        .isLessThan(Duration.ofSeconds(2));
            }
        }
        assertThat(backend.httpConnections.get()).isZero();
        clients = new Clients(TestCertificates.LOCALHOST.trustingClient());
        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/"));
        recorder.session.close();
        recorder.nextClose();
    }

    @Test
    void refusesWeakCipherSuitesWithAHandshakeFailure() throws Exception {
        TestBackend backend = startTlsProxy(builder -> builder);
        // CBC with SHA-1 MACs, for the proxy's EC key: suites the JDK's client still offers when asked to.
        try (SSLSocket socket = tlsSocket("TLSv1.2")) {
            socket.setEnabledCipherSuites(new String[] {
                "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"});

            // The proxy's fatal alert, not a failure of the client's own.
            assertThatThrownBy(socket::startHandshake).isInstanceOf(SSLHandshakeException.class)
                    .hasMessageContaining("handshake_failure");
        }
        try (SSLSocket socket = tlsSocket("TLSv1.2")) {
            socket.setEnabledCipherSuites(new String[] {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"});
            socket.startHandshake();

            assertThat(socket.getSession().getCipherSuite()).as("a strong suite on the same protocol")
                    .isEqualTo("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        }
        assertThat(backend.httpConnections.get()).isZero();
    }

    /**
     * A TLS record longer than any may be (2^14 + 2048 bytes of ciphertext): the proxy closes at once, with a fatal
     * alert and no ServerHello, long before its handshake deadline, and serves the next client. Sent whole, the record
     * is judged once it has arrived; a header alone announcing more than the JDK's engine would ever take is judged on
     * the header. (A header alone announcing 18,433 bytes is not: the engine waits for them, and the handshake deadline
     * ends the wait, see {@link #closesARecordHeaderWhoseBytesNeverComeAtTheHandshakeTimeout}.) Either way the proxy
     * has read all that was sent when it closes, so its alert is not lost to a reset.
     */
    @ParameterizedTest(name = "record length {0}, {1} bytes of it sent")
    @CsvSource({"18433, 18433", "65535, 0"})
    void closesAnOversizedTlsRecordAtOnceAndKeepsServing(int length, int sent) throws Exception {
        TestBackend backend = startTlsProxy(builder -> builder.handshakeTimeout(Duration.ofSeconds(30)));
        try (Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
            socket.setSoTimeout(5_000);
            long start = System.nanoTime();
            try {
                socket.getOutputStream().write(handshakeRecord(length, sent));
            } catch (IOException closedWhileWriting) {
                // The proxy may close before it has read everything: that is a refusal too.
            }
            byte[] answer = readUntilClosed(socket.getInputStream()).getBytes(StandardCharsets.ISO_8859_1);

            assertThat(Duration.ofNanos(System.nanoTime() - start)).as("closed, not waiting for the 30 s deadline")
                    .isLessThan(Duration.ofSeconds(2));
            assertThat(answer).as("one fatal alert").hasSize(7);
            assertThat(answer[0]).as("record type: an alert, not a handshake").isEqualTo((byte) 0x15);
            assertThat(answer[5]).as("alert level").isEqualTo((byte) 2);
        }
        assertThat(backend.httpConnections.get()).isZero();
        clients = new Clients(TestCertificates.LOCALHOST.trustingClient());
        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/"));
        recorder.sendText("after the oversized record");
        assertThat(recorder.nextText()).isEqualTo("after the oversized record");
        recorder.session.close();
        recorder.nextClose();
    }

    @Test
    void closesARecordHeaderWhoseBytesNeverComeAtTheHandshakeTimeout() throws Exception {
        TestBackend backend = startTlsProxy(builder -> builder.handshakeTimeout(Duration.ofSeconds(1)));
        long opened = System.nanoTime(); // before the connect: the proxy's timer starts at its accept
        try (Socket socket = new Socket("127.0.0.1", proxy.uri().getPort())) {
            socket.setSoTimeout(20_000);
            // One byte over the largest legal record; within what the JDK's engine takes for a record (about 33,000
            // bytes: 33,000 waits, 33,093 is refused at once), so it waits for the bytes, held to the deadline like a
            // slow ClientHello.
            socket.getOutputStream().write(handshakeRecord(16_384 + 2_048 + 1, 0));

            assertThat(readUntilClosed(socket.getInputStream())).doesNotStartWith("\u0016");
            assertThat(Duration.ofNanos(System.nanoTime() - opened)).as("closed at the 1 s deadline")
                    .isGreaterThanOrEqualTo(Duration.ofSeconds(1)).isLessThan(Duration.ofSeconds(10));
        }
        assertThat(backend.httpConnections.get()).isZero();
    }

    @Test
    void keyAndTrustStoreMistakesFailWhenConfiguredNamingTheFile(@TempDir Path dir) throws IOException {
        Path missing = dir.resolve("missing.p12");
        assertThatThrownBy(() -> ServerTls.keyStore(missing, "x"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(missing.toString());
        assertThatThrownBy(() -> ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), "wrong"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("wrong password");
        assertThatThrownBy(() -> ServerTls.keyStore(TestCertificates.LOCALHOST.trustStore(), TestCertificates.PASSWORD))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("private key");
        Path empty = Files.writeString(dir.resolve("empty.pem"), "-----BEGIN CERTIFICATE-----\n");
        assertThatThrownBy(() -> BackendTls.trustStore(empty)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(empty.toString());
        assertThatThrownBy(() -> BackendTls.systemTrust().withClientCertificate(TestCertificates.PROXY_CLIENT.pem(),
                TestCertificates.PASSWORD)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void aKeyWhosePasswordIsNotTheStoresFailsWhenConfiguredNamingTheFile(@TempDir Path dir) throws Exception {
        // keytool -keypass and older tools make JKS stores whose keys have passwords of their own. Only the store's
        // password is taken, for both: such a key was found at configuration and failed at start() with
        // "Cannot recover key".
        KeyStore source = KeyStore.getInstance(TestCertificates.LOCALHOST.keyStore().toFile(),
                TestCertificates.PASSWORD.toCharArray());
        String alias = source.aliases().nextElement();
        KeyStore jks = KeyStore.getInstance("JKS");
        jks.load(null, null);
        jks.setKeyEntry(alias, source.getKey(alias, TestCertificates.PASSWORD.toCharArray()),
                "another-key-password".toCharArray(), source.getCertificateChain(alias));
        Path path = dir.resolve("keypass.jks");
        try (OutputStream out = Files.newOutputStream(path)) {
            jks.store(out, TestCertificates.PASSWORD.toCharArray());
        }

        assertThatThrownBy(() -> ServerTls.keyStore(path, TestCertificates.PASSWORD))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(path.toString())
                .hasMessageContaining("wrong password").hasMessageContaining(alias);
        assertThatThrownBy(() -> BackendTls.trustStore(TestCertificates.LOCALHOST.pem())
                .withClientCertificate(path, TestCertificates.PASSWORD))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(path.toString())
                .hasMessageContaining("wrong password");
    }

    @Test
    void aStoreWithASecretKeyButNoPrivateKeyFailsWhenConfiguredNamingTheFile(@TempDir Path dir) throws Exception {
        // As keytool -genseckey makes it: such a store passed as a key store, the proxy started, and every handshake
        // then failed with no certificate and no word in the log.
        KeyStore secretOnly = KeyStore.getInstance("PKCS12");
        secretOnly.load(null, null);
        secretOnly.setEntry("secret", new KeyStore.SecretKeyEntry(new SecretKeySpec(new byte[32], "AES")),
                new KeyStore.PasswordProtection(TestCertificates.PASSWORD.toCharArray()));
        Path path = dir.resolve("secret.p12");
        try (OutputStream out = Files.newOutputStream(path)) {
            secretOnly.store(out, TestCertificates.PASSWORD.toCharArray());
        }

        assertThatThrownBy(() -> ServerTls.keyStore(path, TestCertificates.PASSWORD))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(path.toString())
                .hasMessageContaining("private key");
        assertThatThrownBy(() -> BackendTls.trustStore(TestCertificates.LOCALHOST.pem())
                .withClientCertificate(path, TestCertificates.PASSWORD))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(path.toString())
                .hasMessageContaining("private key");
    }

    @Test
    void readsKeyAndTrustStoresOnAnyFileSystem(@TempDir Path dir) throws Exception {
        // A zip file system (jimfs in a user's tests): the stores were opened through Path.toFile(), which only the
        // default file system has, and failed with "expected: a PKCS#12 or JKS store; null".
        try (FileSystem zip = FileSystems.newFileSystem(dir.resolve("certs.zip"), Map.of("create", "true"))) {
            Path keyStore = Files.copy(TestCertificates.LOCALHOST.keyStore(), zip.getPath("/proxy.p12"));
            Path trustStore = Files.copy(TestCertificates.LOCALHOST.trustStore(), zip.getPath("/trust.p12"));
            TestBackend backend = backend("tls", TestCertificates.LOCALHOST.server());
            startProxy(ProxyBuilder.create()
                    .tls(ServerTls.keyStore(keyStore, TestCertificates.PASSWORD))
                    .backendTls(BackendTls.trustStore(trustStore, TestCertificates.PASSWORD))
                    .route("/", backend.backend()));
            clients = new Clients(TestCertificates.LOCALHOST.trustingClient());

            WsRecorder recorder = clients.connect(Clients.ws(proxy, "/zip"));
            recorder.sendText("stores from a zip");
            assertThat(recorder.nextText()).isEqualTo("stores from a zip");
            recorder.session.close();
            recorder.nextClose();
        }
    }

    @Test
    void trustsADerCertificateFile(@TempDir Path dir) throws Exception {
        // A .cer or .crt as browsers and Windows export them: the JDK's message was "Please load it with a specified
        // type", an option the proxy does not have.
        Certificate certificate;
        try (InputStream in = Files.newInputStream(TestCertificates.LOCALHOST.pem())) {
            certificate = CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        Path der = Files.write(dir.resolve("backend.cer"), certificate.getEncoded());
        TestBackend backend = backend("tls", TestCertificates.LOCALHOST.server());
        startProxy(ProxyBuilder.create().backendTls(BackendTls.trustStore(der)).route("/", backend.backend()));
        clients = new Clients();

        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/der"));
        recorder.sendText("trusted by a DER certificate");
        assertThat(recorder.nextText()).isEqualTo("trusted by a DER certificate");
        recorder.session.close();
        recorder.nextClose();
        assertThatThrownBy(() -> ServerTls.keyStore(der, TestCertificates.PASSWORD))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(der.toString())
                .hasMessageContaining("certificate without its private key").hasMessageNotContaining("specified type");
    }

    @Test
    void servesTheRotatedCertificateWhenStartedAgainThroughToBuilder(@TempDir Path dir) throws Exception {
        // toBuilder().build().start() is how a stopped proxy starts again; it served the key store as it was read
        // when configured, so a renewed certificate was never served, and the old one expired in front of clients.
        Path live = Files.copy(TestCertificates.LOCALHOST.keyStore(), dir.resolve("live.p12"));
        TestBackend backend = backend("plain", null);
        startProxy(ProxyBuilder.create().tls(ServerTls.keyStore(live, TestCertificates.PASSWORD))
                .route("/", backend.backend()));
        assertThat(servedSubject(proxy.uri())).isEqualTo("CN=localhost");
        ProxyBuilder again = proxy.toBuilder();
        proxy.close();

        Files.write(live, Arrays.copyOf(Files.readAllBytes(TestCertificates.UNTRUSTED.keyStore()), 100));
        assertThatThrownBy(() -> again.build().start()).as("a half-written store").isInstanceOf(IOException.class)
                .hasMessageContaining(live.toString());
        Files.copy(TestCertificates.UNTRUSTED.keyStore(), live, StandardCopyOption.REPLACE_EXISTING);
        proxy = again.build();
        proxy.start();

        assertThat(servedSubject(proxy.uri())).isEqualTo("CN=untrusted");
    }

    @Test
    void readsTheBackendTrustStoreAgainWhenStartedAgainThroughToBuilder(@TempDir Path dir) throws Exception {
        Path trust = Files.copy(TestCertificates.LOCALHOST.pem(), dir.resolve("backend-ca.pem"));
        TestBackend backend = backend("untrusted", TestCertificates.UNTRUSTED.server());
        startProxy(ProxyBuilder.create().backendTls(BackendTls.trustStore(trust)).route("/", backend.backend()));
        clients = new Clients();
        assertThat(upgradeStatus("/")).as("before the backend's CA is added").isEqualTo(502);
        ProxyBuilder again = proxy.toBuilder();
        proxy.close();

        Files.copy(TestCertificates.UNTRUSTED.pem(), trust, StandardCopyOption.REPLACE_EXISTING);
        proxy = again.build();
        proxy.start();

        assertThat(upgradeStatus("/")).as("started again, with the file as it is now").isEqualTo(101);
    }

    @Test
    void reloadTlsServesTheRenewedCertificateToNewConnectionsWhileOpenSessionsGoOn(@TempDir Path dir)
            throws Exception {
        Path live = Files.copy(TestCertificates.LOCALHOST.keyStore(), dir.resolve("live.p12"));
        TestBackend backend = backend("plain", null);
        startProxy(ProxyBuilder.create().tls(ServerTls.keyStore(live, TestCertificates.PASSWORD))
                .route("/", backend.backend()));
        clients = new Clients(TestCertificates.LOCALHOST.trustingClient());
        WsRecorder before = clients.connect(Clients.ws(proxy, "/before"));
        before.sendText("before the reload");
        assertThat(before.nextText()).isEqualTo("before the reload");

        Files.copy(TestCertificates.UNTRUSTED.keyStore(), live, StandardCopyOption.REPLACE_EXISTING);
        proxy.reloadTls();

        assertThat(servedSubject(proxy.uri())).as("a new connection").isEqualTo("CN=untrusted");
        before.sendText("after the reload");
        assertThat(before.nextText()).as("the session opened before, on its connection").isEqualTo("after the reload");
        before.session.close();
        assertThat(before.nextClose().code()).isEqualTo(1000);
    }

    @Test
    void reloadTlsKeepsServingTheOldCertificateWhenTheNewFileIsBad(@TempDir Path dir) throws Exception {
        Path live = Files.copy(TestCertificates.LOCALHOST.keyStore(), dir.resolve("live.p12"));
        TestBackend backend = backend("plain", null);
        startProxy(ProxyBuilder.create().tls(ServerTls.keyStore(live, TestCertificates.PASSWORD))
                .route("/", backend.backend()));
        byte[] renewed = Files.readAllBytes(TestCertificates.UNTRUSTED.keyStore());
        Map<String, byte[]> bad = Map.of(
                "half-written", Arrays.copyOf(renewed, renewed.length / 2),
                "empty", new byte[0],
                "a certificate without its key", Files.readAllBytes(TestCertificates.UNTRUSTED.pem()),
                "another password", withPassword(TestCertificates.UNTRUSTED.keyStore(), "another-password"));
        clients = new Clients(TestCertificates.LOCALHOST.trustingClient());

        for (Map.Entry<String, byte[]> file : bad.entrySet()) {
            Files.write(live, file.getValue());

            assertThatThrownBy(proxy::reloadTls).as(file.getKey()).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining(live.toString());
            assertThat(servedSubject(proxy.uri())).as(file.getKey()).isEqualTo("CN=localhost");
            WsRecorder recorder = clients.connect(Clients.ws(proxy, "/"));
            recorder.sendText(file.getKey());
            assertThat(recorder.nextText()).isEqualTo(file.getKey());
            recorder.session.close();
            recorder.nextClose();
        }
        Files.write(live, renewed);
        proxy.reloadTls();
        assertThat(servedSubject(proxy.uri())).as("once the file is good").isEqualTo("CN=untrusted");
    }

    @Test
    void reloadTlsReadsTheBackendTrustStoreAgainForSessionsAndPlainHttp(@TempDir Path dir) throws Exception {
        Path trust = Files.copy(TestCertificates.LOCALHOST.pem(), dir.resolve("backend-ca.pem"));
        TestBackend backend = backend("untrusted", TestCertificates.UNTRUSTED.server());
        startProxy(ProxyBuilder.create().backendTls(BackendTls.trustStore(trust)).route("/", backend.backend()));
        clients = new Clients();
        assertThat(upgradeStatus("/")).as("before the backend's CA is added").isEqualTo(502);
        assertThat(plainStatus()).as("plain HTTP before").isEqualTo(502);

        Files.writeString(trust, "-----BEGIN CERTIFICATE-----\nhalf");
        assertThatThrownBy(proxy::reloadTls).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(trust.toString());
        Files.copy(TestCertificates.UNTRUSTED.pem(), trust, StandardCopyOption.REPLACE_EXISTING);
        proxy.reloadTls();

        assertThat(upgradeStatus("/")).as("a session after the reload").isEqualTo(101);
        assertThat(plainStatus()).as("plain HTTP after the reload").isEqualTo(200);
    }

    @Test
    void reloadTlsRefusesAProxyThatIsNotRunning() throws Exception {
        WebSocketProxy built = ProxyBuilder.create().listen("127.0.0.1", 0)
                .tls(ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD))
                .route("/", Backend.of("ws://127.0.0.1:1")).build();
        assertThatThrownBy(built::reloadTls).as("not started").isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("not running");
        built.start();
        built.reloadTls();
        built.stop(Duration.ZERO);
        assertThatThrownBy(built::reloadTls).as("stopped").isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("not running");
    }

    @Test
    void reloadTlsSaysWhyItReadNoFileWithoutBlamingCustomFactoriesNobodySet() throws Exception {
        // A proxy without TLS files was told "custom factories are yours to reload": it has none.
        TestBackend backend = backend("plain", null);
        startProxy(ProxyBuilder.create().route("/", backend.backend()));

        assertThat(StandardError.of(proxy::reloadTls).lines().filter(line -> line.contains("TLS reloaded")))
                .singleElement().asString().contains("no file to read (listener: no TLS; backends: "
                        + "BackendTls.systemTrust() (the JVM's trust, read at its start))").doesNotContain("custom");
        proxy.close();

        SslContextFactory.Client client = TestCertificates.LOCALHOST.trustingClient();
        resources.add(client::stop);
        startProxy(ProxyBuilder.create().tls(ServerTls.custom(TestCertificates.LOCALHOST::server))
                .backendTls(BackendTls.custom(() -> client)).route("/", backend.backend()));
        assertThat(StandardError.of(proxy::reloadTls).lines().filter(line -> line.contains("TLS reloaded")))
                .singleElement().asString().contains("listener: ServerTls.custom(").contains("backends: BackendTls"
                        + ".custom(").satisfies(line -> assertThat(line.split("yours to reload")).hasSize(3));
    }

    @Test
    void customFactoriesSharedWithADerivedProxySurviveTheFirstProxysStop() throws Exception {
        // A factory the user keeps (to reload it) or shares with a proxy made by toBuilder(): the first proxy started
        // it and so stopped it, under the second, whose handshakes then failed on both legs without a log line.
        SslContextFactory.Server server = TestCertificates.LOCALHOST.server();
        SslContextFactory.Client client = TestCertificates.LOCALHOST.trustingClient();
        resources.add(server::stop);
        resources.add(client::stop);
        TestBackend backend = backend("tls", TestCertificates.LOCALHOST.server());
        startProxy(ProxyBuilder.create().tls(ServerTls.custom(() -> server)).backendTls(BackendTls.custom(() -> client))
                .route("/", backend.backend()));
        WebSocketProxy derived = proxy.toBuilder().build();
        resources.add(derived);
        derived.start();

        proxy.stop(Duration.ZERO);

        assertThat(server.isStarted()).as("the server factory, still the user's").isTrue();
        assertThat(client.isStarted()).as("the client factory, still the user's").isTrue();
        clients = new Clients(TestCertificates.LOCALHOST.trustingClient());
        WsRecorder recorder = clients.connect(Clients.ws(derived, "/derived"));
        recorder.sendText("through the derived proxy");
        assertThat(recorder.nextText()).isEqualTo("through the derived proxy");
        recorder.session.close();
        recorder.nextClose();
    }

    @Test
    void asksACustomBackendFactoryOncePerStartForBothLegs() throws Exception {
        // The WebSocket leg and plain HTTP each asked the supplier for a factory: a user reloading "the" factory
        // reloaded one leg, and the other went on with the old client certificate or trust.
        AtomicInteger asked = new AtomicInteger();
        TestBackend backend = backend("tls", TestCertificates.LOCALHOST.server());
        startProxy(ProxyBuilder.create().backendTls(BackendTls.custom(() -> {
            asked.incrementAndGet();
            return TestCertificates.LOCALHOST.trustingClient();
        })).route("/", backend.backend()));
        clients = new Clients();

        assertThat(asked).as("suppliers asked by one start").hasValue(1);
        assertThat(upgradeStatus("/")).isEqualTo(101);
        assertThat(plainStatus()).isEqualTo(200);
        assertThat(asked).hasValue(1);
    }

    // ---- the backend leg ----

    @Test
    void proxiesToAWssBackendItsTrustStoreVerifies() throws Exception {
        TestBackend backend = backend("tls", TestCertificates.LOCALHOST.server());
        assertThat(backend.uri().getScheme()).isEqualTo("wss");
        for (BackendTls tls : List.of(BackendTls.trustStore(TestCertificates.LOCALHOST.pem()),
                BackendTls.trustStore(TestCertificates.LOCALHOST.trustStore(), TestCertificates.PASSWORD))) {
            startProxy(ProxyBuilder.create().backendTls(tls).route("/", backend.backend()));
            clients = new Clients();
            WsRecorder recorder = clients.connect(Clients.ws(proxy, "/secure"));
            recorder.sendText("to a wss backend");
            assertThat(recorder.nextText()).isEqualTo("to a wss backend");
            assertThat(backend.nextUpgrade().header("X-Forwarded-Proto")).isEqualTo("http");
            recorder.session.close();
            recorder.nextClose();
            Clients.tearDown(proxy, clients);
            proxy = null;
        }
    }

    @Test
    void readsAPemBundleWhateverTextPrecedesItsCertificates(@TempDir Path dir) throws Exception {
        // As curl's cacert.pem starts, and as openssl writes "x509 -text" and "pkcs12 -nokeys" output: a PEM bundle
        // is one by its BEGIN lines, however much text comes first (it was taken for a PKCS#12 or JKS store).
        StringBuilder preamble = new StringBuilder("##\n## Bundle of CA Root Certificates\n##\n");
        for (int i = 0; i < 20; i++) {
            preamble.append("## This is a bundle of X.509 certificates of public Certificate Authorities, line ")
                    .append(i).append("\n");
        }
        String bundle = preamble + "\nBag Attributes\n    friendlyName: untrusted\nsubject=CN = untrusted\n"
                + Files.readString(TestCertificates.UNTRUSTED.pem())
                + "\nCertificate:\n    Data:\n        Version: 3 (0x2)\n        Subject: CN = localhost\n"
                + Files.readString(TestCertificates.LOCALHOST.pem()) + "\n# end of bundle\n";
        Path pem = Files.writeString(dir.resolve("cacert.pem"), bundle);
        assertThat(bundle.indexOf("-----BEGIN")).as("where the first certificate begins").isGreaterThan(1024);

        TestBackend backend = backend("tls", TestCertificates.LOCALHOST.server());
        startProxy(ProxyBuilder.create().backendTls(BackendTls.trustStore(pem)).route("/", backend.backend()));
        clients = new Clients();
        WsRecorder recorder = clients.connect(Clients.ws(proxy, "/secure"));
        recorder.sendText("trusted by the second certificate of the bundle");
        assertThat(recorder.nextText()).isEqualTo("trusted by the second certificate of the bundle");
        recorder.session.close();
        recorder.nextClose();

        Path neither = Files.writeString(dir.resolve("notes.txt"), preamble);
        assertThatThrownBy(() -> BackendTls.trustStore(neither)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(neither.toString()).hasMessageContaining("PEM");
    }

    @Test
    void refusesAnUntrustedBackendCertificateWith502AndSendsItNoRequest() throws Exception {
        TestBackend backend = backend("untrusted", TestCertificates.UNTRUSTED.server());
        startProxy(ProxyBuilder.create().route("/", backend.backend()));
        clients = new Clients();
        assertThat(upgradeStatus("/")).isEqualTo(502);
        assertBackendTlsFailureReported();
        assertThat(backend.upgrades).isEmpty();

        // Trusting another certificate for the same names does not help.
        proxy.close();
        startProxy(ProxyBuilder.create().backendTls(BackendTls.trustStore(TestCertificates.LOCALHOST.pem()))
                .route("/", backend.backend()));
        assertThat(upgradeStatus("/")).isEqualTo(502);
        assertThat(backend.upgrades).isEmpty();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"issued for another host", "expired"})
    void refusesATrustedCertificateThatIsNotValidForTheBackendWith502(String fault) throws Exception {
        TestCertificates.Certificate certificate = fault.equals("expired")
                ? TestCertificates.EXPIRED : TestCertificates.WRONG_HOST;
        TestBackend backend = backend(fault, certificate.server());
        startProxy(ProxyBuilder.create().backendTls(BackendTls.trustStore(certificate.pem()))
                .route("/", backend.backend()));
        clients = new Clients();
        assertThat(upgradeStatus("/")).isEqualTo(502);
        assertBackendTlsFailureReported();
        assertThat(backend.upgrades).isEmpty();
    }

    @Test
    void insecureTrustAllAcceptsAnyCertificateForAnyName() throws Exception {
        TestBackend untrusted = backend("untrusted", TestCertificates.UNTRUSTED.server());
        TestBackend wrongHost = backend("wrong-host", TestCertificates.WRONG_HOST.server());
        startProxy(ProxyBuilder.create().backendTls(BackendTls.insecureTrustAll())
                .route("/a/", untrusted.backend()).route("/b/", wrongHost.backend()));
        clients = new Clients();
        assertThat(BackendTls.insecureTrustAll().isInsecure()).isTrue();
        assertThat(upgradeStatus("/a/")).isEqualTo(101);
        assertThat(upgradeStatus("/b/")).isEqualTo(101);
    }

    @Test
    void presentsAClientCertificateToBackendsThatRequireOne() throws Exception {
        SslContextFactory.Server requiring = TestCertificates.LOCALHOST.server();
        requiring.setNeedClientAuth(true);
        requiring.setTrustStorePath(TestCertificates.PROXY_CLIENT.trustStore().toString());
        requiring.setTrustStorePassword(TestCertificates.PASSWORD);
        TestBackend backend = backend("mtls", requiring);
        BackendTls trusting = BackendTls.trustStore(TestCertificates.LOCALHOST.pem());

        startProxy(ProxyBuilder.create().backendTls(trusting).route("/", backend.backend()));
        clients = new Clients();
        assertThat(upgradeStatus("/")).as("without a client certificate").isEqualTo(502);
        assertThat(backend.upgrades).isEmpty();
        Clients.tearDown(proxy, clients);

        startProxy(ProxyBuilder.create()
                .backendTls(trusting.withClientCertificate(TestCertificates.PROXY_CLIENT.keyStore(),
                        TestCertificates.PASSWORD))
                .route("/", backend.backend()));
        clients = new Clients();
        assertThat(upgradeStatus("/")).as("with the client certificate").isEqualTo(101);
        assertThat(backend.upgrades).hasSize(1);
    }

    @Test
    void neverFallsBackToPlainTextWhenAWssBackendSpeaksPlainHttp() throws Exception {
        TestBackend plain = backend("plain", null);
        TestBackend tls = backend("tls", TestCertificates.LOCALHOST.server());
        startProxy(ProxyBuilder.create().backendTls(BackendTls.trustStore(TestCertificates.LOCALHOST.pem()))
                .route("/downgrade/", Backend.of("wss://127.0.0.1:" + plain.port()))
                .route("/mismatch/", Backend.of("ws://127.0.0.1:" + tls.port())));
        clients = new Clients();
        assertThat(upgradeStatus("/downgrade/")).as("TLS to a plain-text backend").isEqualTo(502);
        // A TLS backend answers plain text with a TLS alert: no HTTP answer at all, so a bad gateway.
        assertThat(upgradeStatus("/mismatch/")).as("plain text to a TLS backend").isEqualTo(502);
        assertThat(plain.upgrades).isEmpty();
        assertThat(tls.upgrades).isEmpty();
    }

    private void assertBackendTlsFailureReported() {
        RecordingListener.ConnectFailed failed = listener.first(RecordingListener.ConnectFailed.class);
        Throwable cause = failed.cause();
        while (cause != null && !(cause instanceof SSLHandshakeException)) {
            cause = cause.getCause();
        }
        assertThat(cause).as("an SSLHandshakeException in " + failed.cause()).isNotNull();
    }

    // ---- raw TLS helpers ----

    /** A TLS socket to the proxy that trusts the proxy's certificate, limited to {@code protocol} when given. */
    private SSLSocket tlsSocket(String protocol) throws Exception {
        SSLSocket socket = TestCertificates.LOCALHOST.socketTo(proxy.uri());
        if (protocol != null) {
            socket.setEnabledProtocols(new String[] {protocol});
        }
        return socket;
    }

    /** The status of a plain GET through the proxy, to the test backend's {@code /plain}. */
    private int plainStatus() throws IOException {
        try (RawHttp http = RawHttp.connect(proxy)) {
            return http.exchange(RawHttp.Request.plain("GET", "/plain", RawHttp.host(proxy))).status();
        }
    }

    /** The bytes of a PKCS#12 copy of {@code keyStore} whose store and key passwords are {@code password}. */
    private static byte[] withPassword(Path keyStore, String password) throws Exception {
        KeyStore source = KeyStore.getInstance(keyStore.toFile(), TestCertificates.PASSWORD.toCharArray());
        String alias = source.aliases().nextElement();
        KeyStore copy = KeyStore.getInstance("PKCS12");
        copy.load(null, null);
        copy.setKeyEntry(alias, source.getKey(alias, TestCertificates.PASSWORD.toCharArray()), password.toCharArray(),
                source.getCertificateChain(alias));
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        copy.store(out, password.toCharArray());
        return out.toByteArray();
    }

    /** The subject of the certificate the proxy serves now, read by a JDK client that trusts any. */
    private static String servedSubject(URI uri) throws Exception {
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, new TrustManager[] {new X509TrustManager() {
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
        }}, null);
        try (SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket("127.0.0.1", uri.getPort())) {
            socket.setSoTimeout(10_000);
            socket.startHandshake();
            return ((X509Certificate) socket.getSession().getPeerCertificates()[0]).getSubjectX500Principal()
                    .getName();
        }
    }

    /** A minimal ClientHello offering TLS 1.{@code minor - 1} and two RSA/AES suites, with no extension. */
    private static byte[] clientHello(int minor) {
        byte[] body = new byte[2 + 32 + 1 + 2 + 4 + 2];
        int i = 0;
        body[i++] = 3;
        body[i++] = (byte) minor;
        i += 32; // random: zeros will do
        body[i++] = 0; // no session id
        body[i++] = 0;
        body[i++] = 4;
        body[i++] = 0x00;
        body[i++] = 0x2f; // TLS_RSA_WITH_AES_128_CBC_SHA
        body[i++] = 0x00;
        body[i++] = 0x35; // TLS_RSA_WITH_AES_256_CBC_SHA
        body[i++] = 1;
        body[i] = 0; // null compression
        byte[] record = new byte[5 + 4 + body.length];
        record[0] = 0x16;
        record[1] = 3;
        record[2] = 1;
        record[3] = 0;
        record[4] = (byte) (4 + body.length);
        record[5] = 1; // client_hello
        record[6] = 0;
        record[7] = 0;
        record[8] = (byte) body.length;
        System.arraycopy(body, 0, record, 9, body.length);
        return record;
    }

    /** A TLS 1.2 handshake record header announcing {@code length} bytes, and {@code sent} random bytes of them. */
    private static byte[] handshakeRecord(int length, int sent) {
        byte[] record = new byte[5 + sent];
        new java.util.Random(7).nextBytes(record);
        record[0] = 0x16;
        record[1] = 3;
        record[2] = 3;
        record[3] = (byte) (length >> 8);
        record[4] = (byte) length;
        return record;
    }

    private static String readUntilClosed(InputStream in) throws IOException {
        StringBuilder text = new StringBuilder();
        byte[] buffer = new byte[4096];
        try {
            for (int n; (n = in.read(buffer)) >= 0; ) {
                text.append(new String(buffer, 0, n, StandardCharsets.ISO_8859_1));
            }
        } catch (SocketTimeoutException stillOpen) {
            throw stillOpen; // the socket's read timeout: not closed
        } catch (IOException reset) {
            // A reset is a close too.
        }
        return text.toString();
    }
}
