package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.nio.file.Path;
import java.security.KeyStore;
import java.util.function.Consumer;
import java.util.function.Supplier;

import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.jspecify.annotations.Nullable;

import dev.wsproxy.internal.TlsStores;

/**
 * TLS for the connections to {@code wss://} backends (and to {@code https://} health checks and plain HTTP); see
 * {@link ProxyBuilder#backendTls(BackendTls)}.
 *
 * <p>A backend's certificate is always verified: its chain against the trusted certificates, its names against the
 * backend URI's host (as a browser does). A backend that fails verification gets no request and the client gets
 * {@code 502}; there is no fallback to {@code ws://}. Only {@link #insecureTrustAll()} turns verification off, with a
 * warning in the log on every start (and a {@link #custom} factory verifies as you configured it).
 *
 * <pre>{@code
 * BackendTls.trustStore(Path.of("/etc/wsproxy/backend-ca.pem"))                  // a private CA
 *         .withClientCertificate(Path.of("/etc/wsproxy/proxy-client.p12"), pwd);  // mTLS
 * }</pre>
 *
 * <p>The proxy never speaks a protocol older than TLS 1.2 to backends. Immutable and thread-safe.
 */
public final class BackendTls {

    private static final BackendTls SYSTEM = new BackendTls(null, null, null, null, false, null, "systemTrust()");

    private final @Nullable Path trustStore;
    private final @Nullable String trustStorePassword;
    private final @Nullable Path clientKeyStore;
    private final @Nullable String clientKeyPassword;
    private final boolean trustAll;
    private final @Nullable Supplier<SslContextFactory.Client> custom;
    private final String description;

    private BackendTls(@Nullable Path trustStore, @Nullable String trustStorePassword, @Nullable Path clientKeyStore,
            @Nullable String clientKeyPassword, boolean trustAll, @Nullable Supplier<SslContextFactory.Client> custom,
            String description) {
        this.trustStore = trustStore;
        this.trustStorePassword = trustStorePassword;
        this.clientKeyStore = clientKeyStore;
        this.clientKeyPassword = clientKeyPassword;
        this.trustAll = trustAll;
        this.custom = custom;
        this.description = description;
    }

    /**
     * Trusts the certificate authorities of the JVM ({@code cacerts}, or {@code javax.net.ssl.trustStore} when set).
     * The default.
     *
     * @return the configuration
     */
    public static BackendTls systemTrust() {
        return SYSTEM;
    }

    /**
     * Trusts the certificates of a file instead of the JVM's: a PEM bundle (one or more
     * {@code -----BEGIN CERTIFICATE-----} blocks, like nginx's {@code proxy_ssl_trusted_certificate}; text before and
     * between them is skipped, as in curl's {@code cacert.pem} or {@code openssl x509 -text} output), a DER certificate
     * ({@code .cer}, {@code .crt}) or PKCS#7 bundle ({@code .p7b}), or a PKCS#12 or JKS store whose certificates can be
     * read without a password. The file is read now, to fail here rather than at start, and again on each start (a
     * proxy started again with {@code toBuilder().build().start()} trusts the file as it is then). A certificate in it
     * that has expired, or is not valid yet, is logged as a warning at each start and reload: the JDK does not check
     * a trusted certificate's dates, and goes on accepting the chains that end in it, which OpenSSL refuses.
     *
     * @param path the trusted certificates
     * @return the configuration
     * @throws IllegalArgumentException if the file cannot be read or holds no certificate
     */
    public static BackendTls trustStore(Path path) {
        requireNonNull(path, "path");
        TlsStores.loadTrustStore(path, null);
        return new BackendTls(path, null, null, null, false, null, "trustStore(" + path + ")");
    }

    /**
     * Trusts the certificates of a PKCS#12 or JKS store protected by a password. The file is read now, and again on
     * each start, as {@link #trustStore(Path)}'s.
     *
     * @param path the trust store
     * @param password its password
     * @return the configuration
     * @throws IllegalArgumentException if the store cannot be read or holds no certificate
     */
    public static BackendTls trustStore(Path path, String password) {
        requireNonNull(path, "path");
        requireNonNull(password, "password");
        TlsStores.loadTrustStore(path, password);
        return new BackendTls(path, password, null, null, false, null, "trustStore(" + path + ")");
    }

    /**
     * Trusts every certificate, for any host name: <b>for development only</b>. Anyone on the path to a backend can
     * then read and change the traffic. Logged as a warning each time a proxy starts with it.
     *
     * @return the configuration
     */
    public static BackendTls insecureTrustAll() {
        return new BackendTls(null, null, null, null, true, null, "insecureTrustAll()");
    }

    /**
     * Uses a Jetty {@code SslContextFactory.Client} of your own. The supplier is called once each time the proxy
     * starts, and its factory serves every backend connection: WebSocket sessions, plain HTTP and health checks.
     * {@code TLSv1} and {@code TLSv1.1} are added to its excluded protocols, and the proxy starts it if it is not
     * started; it never stops it: the factory stays yours, as a {@link ServerTls#custom} one does (share it, reload
     * it, drop it without {@code stop()}; see there how to reload it safely). Host-name verification is yours to
     * keep: Jetty's default ({@code setEndpointIdentificationAlgorithm("HTTPS")}) does it.
     *
     * @param factory supplies the factory
     * @return the configuration
     */
    public static BackendTls custom(Supplier<SslContextFactory.Client> factory) {
        requireNonNull(factory, "factory");
        return new BackendTls(null, null, null, null, false, factory, "custom(" + factory + ")");
    }

    /**
     * Returns this configuration with a client certificate, for backends that require one (mutual TLS). The store
     * is read now, and again on each start, so a renewed certificate is presented once the proxy is started again.
     * A certificate of its chain that has expired, or is not valid yet, is logged as a warning at each start and
     * reload: backends refuse the chain.
     *
     * @param path a PKCS#12 or JKS key store with the proxy's private key and certificate chain
     * @param password the store's password, also used for its key
     * @return a new configuration
     * @throws IllegalArgumentException if the store or one of its keys cannot be read with {@code password} (a JKS
     *         key with a password of its own), or it holds no private key with its certificate chain (a secret key is
     *         not one)
     * @throws IllegalStateException on a {@link #custom} configuration (set the key store on your factory), or on
     *         {@link #insecureTrustAll()}
     */
    public BackendTls withClientCertificate(Path path, String password) {
        requireNonNull(path, "path");
        requireNonNull(password, "password");
        if (custom != null) {
            throw new IllegalStateException("withClientCertificate: set the key store on your own SslContextFactory");
        }
        if (trustAll) {
            // Jetty verifies against the JVM's trust store as soon as a key store is set: refuse rather than mislead.
            throw new IllegalStateException("withClientCertificate: not with insecureTrustAll() (expected: a trust "
                    + "store that holds the backends' certificates)");
        }
        TlsStores.loadKeyStore(path, password);
        return new BackendTls(trustStore, trustStorePassword, path, password, trustAll, null,
                description + ".withClientCertificate(" + path + ")");
    }

    /**
     * Tells whether this configuration verifies nothing ({@link #insecureTrustAll()}).
     *
     * @return {@code true} for {@link #insecureTrustAll()}
     */
    public boolean isInsecure() {
        return trustAll;
    }

    /**
     * Returns a new Jetty factory for this configuration, with protocols older than TLS 1.2 excluded. Called by the
     * proxy on start; the files of {@link #trustStore} and {@link #withClientCertificate} are read again here.
     *
     * @return an unstarted factory, which the proxy starts and stops; or the one a {@link #custom} supplier returned,
     *         started, which no proxy stops
     * @throws IllegalArgumentException if a file cannot be read any more, naming it
     * @throws IllegalStateException if a {@link #custom} supplier returned {@code null}, or a factory that does not
     *         start, or one started with TLS 1.0 or 1.1
     */
    public SslContextFactory.Client newSslContextFactory() {
        SslContextFactory.Client client;
        if (custom != null) {
            client = custom.get();
            if (client == null) {
                throw new IllegalStateException("BackendTls." + description + " supplied no SslContextFactory.Client");
            }
        } else {
            client = ownFactory(trustStore == null ? null : TlsStores.loadTrustStore(trustStore, trustStorePassword),
                    clientKeyStore == null ? null
                            : TlsStores.loadKeyStore(clientKeyStore, requireNonNull(clientKeyPassword)));
        }
        TlsStores.excludeOldProtocols(client);
        if (custom != null) {
            TlsStores.startYours(client, this);
        }
        return client;
    }

    private SslContextFactory.Client ownFactory(@Nullable KeyStore trusted, @Nullable KeyStore clientKey) {
        SslContextFactory.Client client = new SslContextFactory.Client(trustAll);
        if (trusted != null) {
            client.setTrustStore(trusted);
        }
        if (clientKey != null) {
            client.setKeyStore(clientKey);
            client.setKeyStorePassword(clientKeyPassword);
        }
        client.setIncludeProtocols("TLSv1.3", "TLSv1.2");
        return client;
    }

    /**
     * For {@link WebSocketProxy#reloadTls()}: reads the trust store and client certificate again and checks that a
     * factory starts with them; returns what hands them to the running factory, or {@code null} when there is no file
     * to read ({@link #systemTrust()}, {@link #insecureTrustAll()}, {@link #custom}).
     *
     * @throws IllegalArgumentException if a file cannot be read or used, naming it
     */
    @Nullable Consumer<SslContextFactory> reloader() {
        if (custom != null || (trustStore == null && clientKeyStore == null)) {
            return null;
        }
        KeyStore trusted = trustStore == null ? null : TlsStores.loadTrustStore(trustStore, trustStorePassword);
        KeyStore clientKey = clientKeyStore == null ? null
                : TlsStores.loadKeyStore(clientKeyStore, requireNonNull(clientKeyPassword));
        TlsStores.tryOut(ownFactory(trusted, clientKey), this);
        return factory -> {
            if (trusted != null) {
                factory.setTrustStore(trusted);
            }
            if (clientKey != null) {
                factory.setKeyStore(clientKey);
            }
        };
    }

    /** Whether the factory is the user's ({@link #custom}): the proxy never reloads it. */
    boolean isCustom() {
        return custom != null;
    }

    @Override
    public String toString() {
        return "BackendTls." + description;
    }
}
