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
 * TLS for the clients' leg ({@code wss://} clients), used by {@link WebSocketProxy#start()}; see
 * {@link ProxyBuilder#tls(ServerTls)}.
 *
 * <pre>{@code
 * ProxyBuilder.create()
 *         .listen("0.0.0.0", 8443)
 *         .tls(ServerTls.keyStore(Path.of("/etc/wsproxy/proxy.p12"), System.getenv("WSPROXY_TLS_PASSWORD")))
 *         .route("/ws/", Backend.of("ws://10.0.0.1:9000"));
 * }</pre>
 *
 * <p>Whatever the configuration, the proxy never speaks a protocol older than TLS 1.2: {@code TLSv1} and
 * {@code TLSv1.1} are always excluded. The connection is HTTP/1.1 (the standalone server offers no HTTP/2; a server you
 * mount {@link WebSocketProxy#handler()} in may, and WebSockets over HTTP/2 are proxied there). Requests whose
 * {@code Host} does not match the certificate are refused with {@code 400} (Jetty's SNI host check), so a certificate
 * for one name cannot front requests for another. Clients may be asked for certificates (mutual TLS,
 * {@link #withClientCertificates(Path)}), which hooks read with {@link HandshakeRequest#clientCertificates()}.
 * Immutable and thread-safe.
 */
public final class ServerTls {

    private final @Nullable Supplier<SslContextFactory.Server> custom;
    private final @Nullable Path path;
    private final @Nullable String password;
    /** The certificates client certificates are verified against; {@code null}: clients are asked for none. */
    private final @Nullable Path clientTrust;
    /** With {@link #clientTrust}: whether a client without a certificate is refused (else it is only asked). */
    private final boolean clientCertificateRequired;
    private final String description;

    private ServerTls(@Nullable Supplier<SslContextFactory.Server> custom, @Nullable Path path,
            @Nullable String password, @Nullable Path clientTrust, boolean clientCertificateRequired,
            String description) {
        this.custom = custom;
        this.path = path;
        this.password = password;
        this.clientTrust = clientTrust;
        this.clientCertificateRequired = clientCertificateRequired;
        this.description = description;
    }

    /**
     * Serves the certificate and private key of a key store. The store is read now, so a missing file, a wrong
     * password (also a key whose password is not the store's, as {@code keytool -keypass} makes in JKS) or a store
     * without a private key fails here rather than at start; and it is read again on each start, so a proxy started
     * again ({@code toBuilder().build().start()}) serves the file as it is then (a renewed certificate). A store with
     * several keys serves the one whose certificate matches the name the client asks for (SNI). Protocols: TLS 1.3
     * and 1.2; a TLS 1.2 client that asks to renegotiate is disconnected, as nginx does. A certificate that has
     * expired, or is not valid yet, is served all the same, with a warning in the log at each start and reload; so is
     * a CA certificate of its chain in that state, for which clients refuse the chain.
     *
     * @param path a PKCS#12 or JKS key store (convert PEM files with
     *         {@code openssl pkcs12 -export -in cert.pem -inkey key.pem -out proxy.p12})
     * @param password the store's password, also used for its keys
     * @return the configuration
     * @throws IllegalArgumentException if the store or one of its keys cannot be read with {@code password}, or it
     *         holds no private key with its certificate chain (a secret key is not one)
     */
    public static ServerTls keyStore(Path path, String password) {
        requireNonNull(path, "path");
        requireNonNull(password, "password");
        TlsStores.loadKeyStore(path, password);
        return new ServerTls(null, path, password, null, false, "keyStore(" + path + ")");
    }

    /**
     * Uses a Jetty {@code SslContextFactory.Server} of your own, for settings the other forms do not offer (cipher
     * suites, revocation lists for client certificates). The supplier is called on each {@link WebSocketProxy#start()}. {@code TLSv1} and
     * {@code TLSv1.1} are added to the factory's excluded protocols, and the proxy starts it if it is not started; it
     * never stops it: the factory stays yours. So one factory can serve a proxy and the one made from it with
     * {@code toBuilder()}, whichever stops first, and you can reload it while proxies use it. A started factory holds
     * no thread or socket: one you drop needs no {@code stop()}.
     *
     * <p>To reload it (a renewed certificate), read and check the new store first, then hand it over, for instance
     * {@code KeyStore fresh = ...; factory.reload(f -> f.setKeyStore(fresh))}: Jetty's {@code reload} empties the
     * factory before it loads, and when that load fails (a half-written file), every new connection fails until a
     * reload succeeds. {@link #keyStore} with {@link WebSocketProxy#reloadTls()} does this for you.
     *
     * @param factory supplies the factory
     * @return the configuration
     */
    public static ServerTls custom(Supplier<SslContextFactory.Server> factory) {
        requireNonNull(factory, "factory");
        return new ServerTls(factory, null, null, null, false, "custom(" + factory + ")");
    }

    /**
     * Returns this configuration requiring a client certificate (mutual TLS, nginx's {@code ssl_verify_client on}
     * with {@code ssl_client_certificate}): the TLS handshake of a client that sends none, one whose chain does not
     * end in a certificate of {@code trustedCertificates}, or one whose certificate has expired fails, and no hook,
     * backend or access log line ever sees it. (A certificate that is itself in the file is trusted as it is: the JDK
     * does not check a trusted certificate's dates, so trust a CA rather than each client's certificate.) Who an
     * accepted client is, {@link HandshakeRequest#clientCertificates()} tells the route's {@link Authenticator}, which
     * decides what that client may do: any certificate the trusted CA issued is accepted here.
     *
     * <pre>{@code
     * ServerTls.keyStore(Path.of("/etc/wsproxy/proxy.p12"), password)
     *         .withClientCertificates(Path.of("/etc/wsproxy/client-ca.pem"));
     * }</pre>
     *
     * <p>The file is read now, to fail here rather than at start, again on each start and by
     * {@link WebSocketProxy#reloadTls()}, as the key store is; a trusted certificate that has expired, or is not valid
     * yet, is logged as a warning then. Each client certificate is verified when its connection is made: a session
     * stays open when its certificate expires, as under nginx.
     *
     * @param trustedCertificates the certificates that client certificates must chain to, usually the CA that issues
     *     them: a PEM bundle, a DER certificate or PKCS#7 bundle, or a JKS or PKCS#12 store whose certificates can be
     *     read without a password (as {@link BackendTls#trustStore(Path)} reads)
     * @return a new configuration
     * @throws IllegalArgumentException if the file cannot be read or holds no certificate
     * @throws IllegalStateException on a {@link #custom} configuration (set {@code setNeedClientAuth(true)} and a trust
     *     store on your factory)
     * @see #withOptionalClientCertificates(Path)
     */
    public ServerTls withClientCertificates(Path trustedCertificates) {
        return withClientTrust(trustedCertificates, true, "withClientCertificates");
    }

    /**
     * Returns this configuration asking clients for a certificate without requiring one (nginx's
     * {@code ssl_verify_client optional}): a client that sends none is served, and
     * {@link HandshakeRequest#clientCertificates()} is empty for it; one that sends a certificate that does not chain
     * to {@code trustedCertificates}, or has expired, fails its TLS handshake, as with
     * {@link #withClientCertificates(Path)}, which says how the file is read. For listeners where some clients (a
     * service) present a certificate and others (browsers) sign in another way, which the {@link Authenticator} tells
     * apart. Browsers that hold a certificate the server's CA list matches may show their user a prompt.
     *
     * @param trustedCertificates the certificates that client certificates must chain to
     * @return a new configuration
     * @throws IllegalArgumentException if the file cannot be read or holds no certificate
     * @throws IllegalStateException on a {@link #custom} configuration (set {@code setWantClientAuth(true)} and a trust
     *     store on your factory)
     */
    public ServerTls withOptionalClientCertificates(Path trustedCertificates) {
        return withClientTrust(trustedCertificates, false, "withOptionalClientCertificates");
    }

    private ServerTls withClientTrust(Path trustedCertificates, boolean required, String method) {
        requireNonNull(trustedCertificates, "trustedCertificates");
        if (custom != null) {
            throw new IllegalStateException(method + ": set " + (required ? "setNeedClientAuth" : "setWantClientAuth")
                    + "(true) and the trust store on your own SslContextFactory");
        }
        TlsStores.loadTrustStore(trustedCertificates, null);
        return new ServerTls(null, path, password, trustedCertificates, required,
                "keyStore(" + path + ")." + method + "(" + trustedCertificates + ")");
    }

    /**
     * Returns a new Jetty factory for this configuration, with protocols older than TLS 1.2 excluded. Called by the
     * proxy on start; a {@link #keyStore} is read again here.
     *
     * @return an unstarted factory, which the proxy's server starts and stops; or the one a {@link #custom} supplier
     *         returned, started, which no proxy stops
     * @throws IllegalArgumentException if the {@link #keyStore} cannot be read any more, naming it
     * @throws IllegalStateException if a {@link #custom} supplier returned {@code null}, or a factory that does not
     *         start, or one started with TLS 1.0 or 1.1
     */
    public SslContextFactory.Server newSslContextFactory() {
        SslContextFactory.Server server;
        if (custom == null) {
            server = keyStoreFactory(TlsStores.loadKeyStore(requireNonNull(path), requireNonNull(password)),
                    clientTrust == null ? null : TlsStores.loadTrustStore(clientTrust, null));
        } else {
            server = custom.get();
            if (server == null) {
                throw new IllegalStateException("ServerTls." + description + " supplied no SslContextFactory.Server");
            }
        }
        TlsStores.excludeOldProtocols(server);
        if (custom != null) {
            TlsStores.startYours(server, this);
        }
        return server;
    }

    /**
     * For {@link WebSocketProxy#reloadTls()}: reads the key store (and the client certificates' trusted certificates)
     * again and checks that a factory starts with them; returns what hands them to the running factory, or
     * {@code null} for {@link #custom} (the user's to reload).
     *
     * @throws IllegalArgumentException if a file cannot be read or used, naming it
     */
    @Nullable Consumer<SslContextFactory> reloader() {
        if (custom != null) {
            return null;
        }
        KeyStore fresh = TlsStores.loadKeyStore(requireNonNull(path), requireNonNull(password));
        KeyStore trusted = clientTrust == null ? null : TlsStores.loadTrustStore(clientTrust, null);
        TlsStores.tryOut(keyStoreFactory(fresh, trusted), this);
        return factory -> {
            factory.setKeyStore(fresh);
            if (trusted != null) {
                factory.setTrustStore(trusted);
            }
        };
    }

    private SslContextFactory.Server keyStoreFactory(KeyStore store, @Nullable KeyStore clientTrusted) {
        SslContextFactory.Server server = new SslContextFactory.Server();
        server.setKeyStore(store);
        server.setKeyStorePassword(password);
        if (clientTrusted != null) {
            server.setTrustStore(clientTrusted);
            if (clientCertificateRequired) {
                server.setNeedClientAuth(true);
            } else {
                server.setWantClientAuth(true);
            }
        }
        server.setIncludeProtocols("TLSv1.3", "TLSv1.2");
        // Jetty's default, kept whatever it becomes: TLS 1.2 renegotiation started by a client costs the server a full
        // handshake for each, on demand, and has had its attacks; nginx refuses it too. (TLS 1.3 has none.)
        server.setRenegotiationAllowed(false);
        return server;
    }

    /** Whether the factory is the user's ({@link #custom}): the proxy never reloads it. */
    boolean isCustom() {
        return custom != null;
    }

    @Override
    public String toString() {
        return "ServerTls." + description;
    }
}
