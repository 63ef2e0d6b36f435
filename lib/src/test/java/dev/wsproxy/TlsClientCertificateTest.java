package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.InetSocketAddress;
import java.net.SocketException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

import org.eclipse.jetty.client.ContentResponse;
import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http2.api.Session;
import org.eclipse.jetty.http2.client.HTTP2Client;
import org.eclipse.jetty.http2.server.HTTP2ServerConnectionFactory;
import org.eclipse.jetty.server.ConnectionFactory;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.SecureRequestCustomizer;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.SslConnectionFactory;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.websocket.api.exceptions.UpgradeException;
import org.eclipse.jetty.websocket.client.ClientUpgradeRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import dev.wsproxy.TestCertificates.Certificate;
import dev.wsproxy.TestCertificates.ClientCertificates;

/**
 * Mutual TLS: the certificate a client presents reaches the hooks ({@link HandshakeRequest#clientCertificates()}), on
 * the proxy's listener ({@link ServerTls#withClientCertificates}, and {@code withOptionalClientCertificates}) and on a
 * user's TLS connector when mounted (with and without Jetty's {@code SecureRequestCustomizer}, over HTTP/1.1 and
 * HTTP/2), for WebSocket upgrades and for the plain HTTP a route forwards. The authenticator here lets
 * {@code CN=alice} of the client CA through with her subject as {@code X-User-Id} for the backend, a client without a
 * certificate through as anonymous (no {@code X-User-Id}, whatever it sent), and refuses anyone else with 403. Before,
 * hooks had no way to read the certificate: alice was refused as anyone.
 */
class TlsClientCertificateTest {

    private final List<AutoCloseable> resources = new ArrayList<>();
    /** The chain each authenticator call saw, in order. */
    private final BlockingQueue<List<X509Certificate>> seen = new LinkedBlockingQueue<>();
    private TestBackend backend;
    private WebSocketProxy proxy;

    @BeforeEach
    void startBackend() throws Exception {
        backend = new TestBackend("b1");
        resources.add(backend);
    }

    @AfterEach
    void tearDown() throws Exception {
        Clients.stopAfterLeakCheck(proxy, resources, backend);
    }

    /** Alice of the client CA by name, anonymous without a certificate, anyone else 403; records each chain seen. */
    private Authenticator aliceOrAnonymous() {
        return Authenticator.of(request -> {
            List<X509Certificate> chain = request.clientCertificates();
            seen.add(chain);
            if (chain.isEmpty()) {
                return AuthDecision.allow().withoutBackendHeader("X-User-Id"); // no identity, and none forged
            }
            X509Certificate leaf = chain.get(0);
            String subject = leaf.getSubjectX500Principal().getName();
            if (subject.equals("CN=alice") && leaf.getIssuerX500Principal().getName().equals("CN=client-ca")) {
                return AuthDecision.allow().withBackendHeader("X-User-Id", subject);
            }
            return AuthDecision.reject(403);
        });
    }

    /** Starts the proxy on a TLS listener with the test certificate, {@code tls} adding the client certificates. */
    private void startTlsProxy(UnaryOperator<ServerTls> tls) throws Exception {
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .tls(tls.apply(ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD)))
                .route("/", r -> r.backends(backend.backend()).authenticator(aliceOrAnonymous()))
                .build();
        proxy.start();
    }

    /** A client that presents {@code certificate} ({@code null}: none) and trusts the proxy's. */
    private Clients clientsOf(Certificate certificate) throws Exception {
        Clients clients = new Clients(certificate == null ? TestCertificates.LOCALHOST.trustingClient()
                : certificate.presentedTo(TestCertificates.LOCALHOST));
        resources.add(clients);
        return clients;
    }

    /** The status of an upgrade to {@code uri} with a forged {@code X-User-Id}: 101 when it succeeded (then closed). */
    private static int upgradeStatus(Clients clients, URI uri) throws Exception {
        WsRecorder recorder = new WsRecorder();
        ClientUpgradeRequest request = new ClientUpgradeRequest(uri);
        request.setHeader("X-User-Id", "CN=admin");
        try {
            clients.client.connect(recorder, request).get(10, TimeUnit.SECONDS).close();
            recorder.nextClose();
            return 101;
        } catch (ExecutionException e) {
            assertThat(e.getCause()).isInstanceOf(UpgradeException.class);
            return ((UpgradeException) e.getCause()).getResponseStatusCode();
        }
    }

    /** The subjects of the next chain the authenticator saw. */
    private List<String> nextSeen() throws InterruptedException {
        List<X509Certificate> chain = seen.poll(10, TimeUnit.SECONDS);
        assertThat(chain).as("the authenticator was called").isNotNull();
        return chain.stream().map(certificate -> certificate.getSubjectX500Principal().getName()).toList();
    }

    @Test
    void allowsAliceAndRefusesBobWith403ByTheCertificatesTheyPresent() throws Exception {
        startTlsProxy(tls -> tls.withClientCertificates(ClientCertificates.CA.pem()));

        Clients alice = clientsOf(ClientCertificates.ALICE);
        WsRecorder recorder = alice.connect(Clients.ws(proxy, "/chat"), Map.of("X-User-Id", "CN=admin"));
        recorder.sendText("hello from alice");
        assertThat(recorder.nextText()).isEqualTo("hello from alice");
        assertThat(nextSeen()).as("the chain, leaf first").containsExactly("CN=alice", "CN=client-ca");
        assertThat(backend.nextUpgrade().headers().get("x-user-id")).as("her subject, the forged value removed")
                .containsExactly("CN=alice");
        recorder.session.close();
        recorder.nextClose();

        assertThat(upgradeStatus(clientsOf(ClientCertificates.BOB), Clients.ws(proxy, "/chat"))).isEqualTo(403);
        assertThat(nextSeen()).containsExactly("CN=bob", "CN=client-ca");
        assertThat(backend.upgrades).as("bob reached no backend").isEmpty();
    }

    @Test
    void refusesAtTlsAClientWithoutACertificateOrWithOneFromAnotherCaOrExpiredBeforeAnyHook(@TempDir Path dir)
            throws Exception {
        // The client CA, and the CA of the expired certificate (TestCertificates.EXPIRED's pem).
        Path trusted = Files.writeString(dir.resolve("client-cas.pem"), Files.readString(ClientCertificates.CA.pem())
                + Files.readString(TestCertificates.EXPIRED.pem()));
        startTlsProxy(tls -> tls.withClientCertificates(trusted));

        // TLS 1.3: the client's handshake completes before the server has checked its certificate, so the refusal
        // (a fatal alert: bad_certificate from JDK 17, certificate_required from later ones, whose message names it
        // before "Received fatal alert") comes at the first read.
        assertThat(refusal(null)).as("no certificate").contains("Received fatal alert: ")
                .containsAnyOf("bad_certificate", "certificate_required");
        // Sent (its issuer's name is the one the proxy asks for) and refused when checked: not the alert of no
        // certificate.
        assertThat(refusal(ClientCertificates.IMPOSTOR)).as("from another CA of the trusted CA's name")
                .contains("Received fatal alert: ").contains("certificate_unknown");
        assertThat(refusal(TestCertificates.EXPIRED)).as("expired, from a trusted CA")
                .contains("Received fatal alert: ").containsAnyOf("bad_certificate", "certificate_expired",
                        "certificate_unknown");
        Clients impostor = clientsOf(ClientCertificates.IMPOSTOR);
        assertThatThrownBy(() -> impostor.connect(Clients.ws(proxy, "/chat"))).as("Jetty's client, the impostor")
                .isInstanceOf(ExecutionException.class).hasRootCauseInstanceOf(SSLHandshakeException.class);

        assertThat(seen).as("no hook ran").isEmpty();
        assertThat(backend.httpConnections).as("no backend connection").hasValue(0);
    }

    @Test
    void seesNoCertificateFromAClientThatSendsNoneOrConnectsWithoutTls() throws Exception {
        startTlsProxy(tls -> tls.withOptionalClientCertificates(ClientCertificates.CA.pem()));

        assertThat(upgradeStatus(clientsOf(null), Clients.ws(proxy, "/chat"))).as("asked, and sent none")
                .isEqualTo(101);
        assertThat(nextSeen()).isEmpty();
        assertThat(backend.nextUpgrade().headers()).as("anonymous: the forged X-User-Id removed")
                .doesNotContainKey("x-user-id");
        assertThat(upgradeStatus(clientsOf(ClientCertificates.ALICE), Clients.ws(proxy, "/chat"))).isEqualTo(101);
        assertThat(nextSeen()).as("the same listener, with a certificate").containsExactly("CN=alice", "CN=client-ca");
        assertThat(backend.nextUpgrade().header("x-user-id")).isEqualTo("CN=alice");
        Clients.assertNoLeaks(proxy, null, backend);
        proxy.close();

        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", r -> r.backends(backend.backend()).authenticator(aliceOrAnonymous())).build();
        proxy.start();
        assertThat(upgradeStatus(clientsOf(null), Clients.ws(proxy, "/chat"))).as("ws://").isEqualTo(101);
        assertThat(nextSeen()).isEmpty();
    }

    @Test
    void authenticatesThePlainHttpARouteForwardsByTheClientCertificateToo() throws Exception {
        startTlsProxy(tls -> tls.withClientCertificates(ClientCertificates.CA.pem()));
        URI plain = proxy.uri().resolve("/plain");

        ContentResponse alice = httpsClientOf(ClientCertificates.ALICE).newRequest(plain)
                .headers(headers -> headers.put("X-User-Id", "CN=admin")).timeout(10, TimeUnit.SECONDS).send();
        assertThat(alice.getStatus()).isEqualTo(200);
        assertThat(alice.getContentAsString()).contains("uid:CN=alice ");
        assertThat(nextSeen()).containsExactly("CN=alice", "CN=client-ca");

        ContentResponse bob = httpsClientOf(ClientCertificates.BOB).newRequest(plain).timeout(10, TimeUnit.SECONDS)
                .send();
        assertThat(bob.getStatus()).isEqualTo(403);
        assertThat(nextSeen()).containsExactly("CN=bob", "CN=client-ca");
    }

    @Test
    void reloadTlsReadsTheTrustedCertificatesForClientsAgain(@TempDir Path dir) throws Exception {
        Path trusted = Files.copy(TestCertificates.LOCALHOST.pem(), dir.resolve("client-ca.pem"));
        startTlsProxy(tls -> tls.withClientCertificates(trusted));
        Clients alice = clientsOf(ClientCertificates.ALICE);
        assertThatThrownBy(() -> alice.connect(Clients.ws(proxy, "/chat"))).as("before her CA is trusted")
                .isInstanceOf(ExecutionException.class).hasRootCauseInstanceOf(SSLHandshakeException.class);

        Files.writeString(trusted, "-----BEGIN CERTIFICATE-----\nhalf");
        assertThatThrownBy(proxy::reloadTls).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(trusted.toString());
        Files.copy(ClientCertificates.CA.pem(), trusted, StandardCopyOption.REPLACE_EXISTING);
        proxy.reloadTls();

        assertThat(upgradeStatus(alice, Clients.ws(proxy, "/chat"))).as("after the reload").isEqualTo(101);
        assertThat(nextSeen()).containsExactly("CN=alice", "CN=client-ca");
    }

    @Test
    void clientCertificatesAreConfiguredOnTheKeyStoreFormOnlyAndTheirFileIsReadAtOnce(@TempDir Path dir)
            throws Exception {
        ServerTls custom = ServerTls.custom(TestCertificates.LOCALHOST::server);
        assertThatThrownBy(() -> custom.withClientCertificates(ClientCertificates.CA.pem()))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("setNeedClientAuth");
        assertThatThrownBy(() -> custom.withOptionalClientCertificates(ClientCertificates.CA.pem()))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("setWantClientAuth");
        ServerTls keyStore = ServerTls.keyStore(TestCertificates.LOCALHOST.keyStore(), TestCertificates.PASSWORD);
        Path missing = dir.resolve("missing.pem");
        assertThatThrownBy(() -> keyStore.withClientCertificates(missing))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(missing.toString());
        assertThat(keyStore.withClientCertificates(ClientCertificates.CA.pem())
                .withOptionalClientCertificates(ClientCertificates.CA.pem()))
                .as("the last one called decides").hasToString("ServerTls.keyStore(" + TestCertificates.LOCALHOST
                        .keyStore() + ").withOptionalClientCertificates(" + ClientCertificates.CA.pem() + ")");
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"proxy's connector", "plain connector", "plain connector without SecureRequestCustomizer"})
    void readsTheClientCertificateOnAUsersOwnTlsConnectorWhenMounted(String kind) throws Exception {
        HttpConfiguration http = new HttpConfiguration();
        SslConnectionFactory tls = new SslConnectionFactory(requiringClientCertificates(), "http/1.1");
        if (kind.endsWith("without SecureRequestCustomizer")) {
            tls.setEnsureSecureRequestCustomizer(false); // else the TLS layer adds one to the configuration
        } else {
            http.addCustomizer(new SecureRequestCustomizer());
        }
        int port = mount(kind.equals("proxy's connector"), tls, new HttpConnectionFactory(http));
        URI uri = URI.create("wss://127.0.0.1:" + port + "/chat");

        assertThat(upgradeStatus(clientsOf(ClientCertificates.ALICE), uri)).isEqualTo(101);
        assertThat(nextSeen()).containsExactly("CN=alice", "CN=client-ca");
        assertThat(backend.nextUpgrade().header("x-user-id")).isEqualTo("CN=alice");
        assertThat(upgradeStatus(clientsOf(ClientCertificates.BOB), uri)).isEqualTo(403);
        assertThat(nextSeen()).containsExactly("CN=bob", "CN=client-ca");
    }

    @Test
    void readsTheClientCertificateOfAWebSocketOverHttp2() throws Exception {
        // h2 straight over TLS, without ALPN (SlowlorisTest has a connector with it): once the protocol is chosen,
        // the streams and the TLS connection under them are the same as after ALPN.
        HttpConfiguration http = new HttpConfiguration();
        http.addCustomizer(new SecureRequestCustomizer());
        int port = mount(false, new SslConnectionFactory(requiringClientCertificates(), "h2"),
                new HTTP2ServerConnectionFactory(http));
        HTTP2Client h2 = new HTTP2Client();
        h2.setUseALPN(false);
        h2.start();
        resources.add(h2::stop);

        RawH2WebSocket alice = RawH2WebSocket.open(h2Session(h2, ClientCertificates.ALICE, port), port, "/chat",
                HttpFields.build().put("X-User-Id", "CN=admin"), "13", true).accepted();
        assertThat(nextSeen()).containsExactly("CN=alice", "CN=client-ca");
        assertThat(backend.nextUpgrade().headers().get("x-user-id")).containsExactly("CN=alice");
        alice.sendText("over h2");
        assertThat(alice.readText()).isEqualTo("over h2");
        alice.sendClose(1000, "");
        RawFrames.assertCloseFrame(alice.read(), 1000, "");

        RawH2WebSocket bob = RawH2WebSocket.open(h2Session(h2, ClientCertificates.BOB, port), port, "/chat",
                HttpFields.EMPTY, "13", true);
        assertThat(bob.status()).isEqualTo(403);
        assertThat(nextSeen()).containsExactly("CN=bob", "CN=client-ca");
    }

    /** The user's own factory for its connector: the test certificate, client certificates of the client CA required. */
    private static SslContextFactory.Server requiringClientCertificates() {
        SslContextFactory.Server tls = TestCertificates.LOCALHOST.server();
        tls.setNeedClientAuth(true);
        tls.setTrustStorePath(ClientCertificates.CA.trustStore().toString());
        tls.setTrustStorePassword(TestCertificates.PASSWORD);
        return tls;
    }

    /**
     * Mounts a proxy with {@link #aliceOrAnonymous()} in a server of the test's, on a connector (the proxy's kind or
     * Jetty's plain one) with {@code factories}; returns its port.
     */
    private int mount(boolean proxysConnector, ConnectionFactory... factories) throws Exception {
        proxy = ProxyBuilder.create()
                .route("/", r -> r.backends(backend.backend()).authenticator(aliceOrAnonymous())).build();
        Server server = new Server(WebSocketProxy.threadPool());
        ServerConnector connector = proxysConnector ? WebSocketProxy.serverConnector(server, factories)
                : new ServerConnector(server, factories);
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        server.setHandler(proxy.handler());
        server.start();
        resources.add(server::stop);
        return connector.getLocalPort();
    }

    private Session h2Session(HTTP2Client h2, Certificate certificate, int port) throws Exception {
        SslContextFactory.Client tls = certificate.presentedTo(TestCertificates.LOCALHOST);
        tls.start();
        resources.add(tls::stop);
        return h2.connect(tls, new InetSocketAddress("127.0.0.1", port), new Session.Listener() {
        }).get(10, TimeUnit.SECONDS);
    }

    private HttpClient httpsClientOf(Certificate certificate) throws Exception {
        HttpClient client = new HttpClient();
        client.setSslContextFactory(certificate.presentedTo(TestCertificates.LOCALHOST));
        client.start();
        resources.add(client::stop);
        return client;
    }

    /**
     * What a JDK client that presents {@code certificate} ({@code null}: none) reads from the proxy's listener after
     * its TLS handshake: the message of the TLS failure; an accepted client times out (the server awaits a request).
     * The server's alert and close can also beat the client's last handshake write, which then fails with a broken
     * pipe or a reset and no alert read: that attempt says nothing, and is made again (three attempts at most).
     */
    private String refusal(Certificate certificate) throws Exception {
        KeyManagerFactory keys = null;
        if (certificate != null) {
            KeyStore store = KeyStore.getInstance(certificate.keyStore().toFile(),
                    TestCertificates.PASSWORD.toCharArray());
            keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            keys.init(store, TestCertificates.PASSWORD.toCharArray());
        }
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(KeyStore.getInstance(TestCertificates.LOCALHOST.trustStore().toFile(),
                TestCertificates.PASSWORD.toCharArray()));
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keys == null ? null : keys.getKeyManagers(), trust.getTrustManagers(), null);
        String outcome = null;
        for (int attempt = 0; attempt < 3; attempt++) {
            try (SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket("127.0.0.1",
                    proxy.uri().getPort())) {
                socket.setSoTimeout(10_000);
                socket.startHandshake();
                // Not a request: the alert may close the socket under a write. An accepted client reads nothing.
                return "read " + socket.getInputStream().read();
            } catch (SSLException refused) {
                return refused.getMessage();
            } catch (SocketException raced) {
                outcome = "no alert read: " + raced.getMessage();
            }
        }
        return outcome;
    }
}
