package dev.wsproxy;

import java.net.InetSocketAddress;
import java.net.URI;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.jspecify.annotations.Nullable;

/**
 * A read-only view of a client's WebSocket upgrade request, as the proxy received it.
 *
 * <p>Given to {@link OriginValidator}s, to {@link Authenticator}s, to {@link BackendSelector}s (through
 * {@link SelectionContext}) and to {@link ProxyListener}s. It stays valid only during the call it is passed to.
 */
public interface HandshakeRequest {

    /**
     * Returns the path prefix of the route that matched this request.
     *
     * @return the route prefix, like {@code /ws/}
     */
    String route();

    /**
     * Returns the client's address: the peer that connected to the proxy or, when that peer is one of
     * {@link ProxyBuilder#trustedProxies(String...)}, the client it names, with port 0: the right-most hop of its
     * {@code X-Forwarded-For} that is not a trusted proxy, or its {@code X-Real-IP} when it sends no
     * {@code X-Forwarded-For}. When the client it names is the peer itself, the peer's address with its port.
     *
     * @return the client's socket address
     */
    InetSocketAddress clientAddress();

    /**
     * Returns the URI the client asked for: scheme {@code https} when {@link #secure()}, else {@code http}; host and
     * port from the {@code Host} header (from the first host of {@code X-Forwarded-Host} when the peer is a trusted
     * proxy and that is a host with an optional port); path and query as sent, with the characters {@code URI} does
     * not allow there percent-encoded (browsers send {@code { } | ^} unencoded in queries: {@code ?f={a}} is
     * {@code ?f=%7Ba%7D} here). The path has no dot segments: a request with a {@code .} or {@code ..} segment is
     * refused with {@code 400} before any hook runs, so a check on the path sees what the route matched and the
     * backend gets.
     *
     * @return the request URI
     */
    URI uri();

    /**
     * Tells whether the client connected over TLS: to the proxy or, when the peer is a trusted proxy
     * ({@link ProxyBuilder#trustedProxies(String...)}) that sends {@code X-Forwarded-Proto}, to that proxy
     * ({@code https} or {@code wss}).
     *
     * @return {@code true} for {@code wss://} clients
     */
    boolean secure();

    /**
     * Returns the certificate chain the client presented in its TLS handshake with this server, leaf first: who the
     * client is under mutual TLS (nginx's {@code $ssl_client_cert}, {@code $ssl_client_s_dn} from the first
     * certificate's {@code getSubjectX500Principal()}, {@code $ssl_client_i_dn} from its
     * {@code getIssuerX500Principal()}).
     *
     * <p>The chain was verified by the TLS handshake against the trusted certificates the server was configured with
     * ({@link ServerTls#withClientCertificates(java.nio.file.Path)}, or your own {@code SslContextFactory.Server}'s
     * trust store with {@code setNeedClientAuth} or {@code setWantClientAuth}, on the proxy's listener or, when
     * mounted, on your connector): a client whose certificate does not verify never reaches a hook. It is verified
     * as the server was told to: a factory of your own that trusts all ({@code setTrustAll(true)}) passes any chain
     * here. Checking who it names (its subject, its issuer, a name in its {@code getSubjectAlternativeNames()}) is
     * the hook's job: a certificate the trusted CA issued to anyone verifies. The same over HTTP/1.1 and HTTP/2
     * (RFC 8441), and for the plain HTTP requests a route forwards.
     *
     * <p>The certificates are those of the TLS connection this server accepted: behind a load balancer or a trusted
     * proxy that ends TLS ({@link ProxyBuilder#trustedProxies(String...)}), that is its certificate if it presents
     * one, not the client's of {@link #clientAddress()}; the client's identity then comes in a header that proxy
     * sets.
     *
     * @return the client's certificates, leaf first; empty when the connection is not TLS, or the client sent none
     *     (the server asked for none, or only asked)
     */
    default List<X509Certificate> clientCertificates() {
        return List.of();
    }

    /**
     * Returns the first value of a request header. {@code Authorization} and {@code Origin} have one value at most: a
     * request that repeats either is refused with {@code 400} before any hook sees it.
     *
     * @param name the header name, case-insensitive
     * @return the value, or {@code null} when the header is absent
     */
    @Nullable String header(String name);

    /**
     * Returns every value of a request header, in order.
     *
     * @param name the header name, case-insensitive
     * @return the values, empty when the header is absent
     */
    List<String> headers(String name);

    /**
     * Returns the names of the request headers, each once, in the order they first appear. Not always spelled as the
     * client sent them: Jetty spells the headers it knows in their usual case ({@code host} comes back as
     * {@code Host}, {@code sec-websocket-key} as {@code Sec-WebSocket-Key}), unless the server's
     * {@code HttpCompliance} allows {@code CASE_SENSITIVE_FIELD_NAME}, and a name the client sent in several spellings
     * ({@code X-User} and {@code x-user}) comes back once, as first spelled. Compare names ignoring case:
     * {@code contains} on the returned set does not.
     *
     * @return the header names, a snapshot
     */
    Set<String> headerNames();

    /**
     * Returns the value of a cookie sent with the request.
     *
     * @param name the cookie name, case-sensitive
     * @return the first value, or {@code null} when the request has no such cookie. A {@code Cookie} header that the
     *     connector's cookie compliance refuses (a space in a value under a server's {@code RFC6265_STRICT}) is read as
     *     Jetty's default compliance reads it, the cookies it cannot read skipped: the client's header is not the
     *     hook's failure, and goes to the backend as it came
     */
    @Nullable String cookie(String name);

    /**
     * Returns the first value of a query parameter, decoded.
     *
     * <p>A parameter may be repeated ({@code ?room=mine&room=victim}), the query goes to the backend as it came, and
     * backends do not agree on which value is the parameter: PHP and Rails read the last, Express an array. An
     * authorization decision on a parameter should read {@link #queryParameters(String)} and refuse a repeated one,
     * or rest on credentials rather than on the shape of the request.
     *
     * @param name the parameter name, case-sensitive
     * @return the first value, or {@code null} when the query has no such parameter. A query that does not decode
     *     strictly (a {@code %} that starts no escape, bytes that are not UTF-8) is decoded leniently: the bad escape
     *     kept as it is, bad bytes as U+FFFD, the other parameters as the backend reads them
     * @see #queryParameters(String)
     */
    @Nullable String queryParameter(String name);

    /**
     * Returns every value of a query parameter, decoded, in the order they appear: {@code ?room=mine&room=victim}
     * gives {@code [mine, victim]}. Decoded as {@link #queryParameter(String)} decodes them.
     *
     * @param name the parameter name, case-sensitive
     * @return the values, empty when the query has no such parameter
     */
    List<String> queryParameters(String name);

    /**
     * Returns the subprotocols the client offered in {@code Sec-WebSocket-Protocol}, in order.
     *
     * @return the offered subprotocols, empty when none
     */
    List<String> subprotocols();

    /**
     * Returns an attribute an {@link Authenticator} attached with {@link AuthDecision#withAttribute}, for instance a
     * tenant to route on.
     *
     * @param name the attribute name
     * @return its value, or {@code null} when none was attached (always before authentication)
     */
    default @Nullable Object attribute(String name) {
        return attributes().get(name);
    }

    /**
     * Returns the attributes an {@link Authenticator} attached.
     *
     * @return an unmodifiable map, empty before authentication or without an authenticator
     */
    default Map<String, Object> attributes() {
        return Map.of();
    }
}
