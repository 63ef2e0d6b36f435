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
 * for one name cannot front requests for another. Immutable and thread-safe.
 */
public final class ServerTls {

    private final @Nullable Supplier<SslContextFactory.Server> custom;
    private final @Nullable Path path;
    private final @Nullable String password;
    private final String description;

    private ServerTls(@Nullable Supplier<SslContextFactory.Server> custom, @Nullable Path path,
            @Nullable String password, String description) {
        this.custom = custom;
        this.path = path;
        this.password = password;
        this.description = description;
    }

    /**
     * Serves the certificate and private key of a key store. The store is read now, so a missing file, a wrong
     * password (also a key whose password is not the store's, as {@code keytool -keypass} makes in JKS) or a store
     * without a private key fails here rather than at start; and it is read again on each start, so a proxy started
     * again ({@code toBuilder().build().start()}) serves the file as it is then (a renewed certificate). A store with
     * several keys serves the one whose certificate matches the name the client asks for (SNI). Protocols: TLS 1.3
     * and 1.2; a TLS 1.2 client that asks to renegotiate is disconnected, as nginx does. A certificate that has
     * expired, or is not valid yet, is served all the same, with a warning in the log at each start and reload.
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
        return new ServerTls(null, path, password, "keyStore(" + path + ")");
    }

    /**
     * Uses a Jetty {@code SslContextFactory.Server} of your own, for settings the other forms do not offer (client
     * certificates, cipher suites). The supplier is called on each {@link WebSocketProxy#start()}. {@code TLSv1} and
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
        return new ServerTls(factory, null, null, "custom(" + factory + ")");
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
            server = keyStoreFactory(TlsStores.loadKeyStore(requireNonNull(path), requireNonNull(password)));
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
     * For {@link WebSocketProxy#reloadTls()}: reads the key store again and checks that a factory starts with it;
     * returns what hands it to the running factory, or {@code null} for {@link #custom} (the user's to reload).
     *
     * @throws IllegalArgumentException if the store cannot be read or used, naming it
     */
    @Nullable Consumer<SslContextFactory> reloader() {
        if (custom != null) {
            return null;
        }
        KeyStore fresh = TlsStores.loadKeyStore(requireNonNull(path), requireNonNull(password));
        TlsStores.tryOut(keyStoreFactory(fresh), this);
        return factory -> factory.setKeyStore(fresh);
    }

    private SslContextFactory.Server keyStoreFactory(KeyStore store) {
        SslContextFactory.Server server = new SslContextFactory.Server();
        server.setKeyStore(store);
        server.setKeyStorePassword(password);
        server.setIncludeProtocols("TLSv1.3", "TLSv1.2");
        // Jetty's default, kept whatever it becomes: TLS 1.2 renegotiation started by a client costs the server a full
        // handshake for each, on demand, and has had its attacks; nginx refuses it too. (TLS 1.3 has none.)
        server.setRenegotiationAllowed(false);
        return server;
    }

    @Override
    public String toString() {
        return "ServerTls." + description;
    }
}
