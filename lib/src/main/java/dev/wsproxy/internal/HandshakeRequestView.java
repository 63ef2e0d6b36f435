package dev.wsproxy.internal;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.security.cert.X509Certificate;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.eclipse.jetty.http.ComplianceViolation;
import org.eclipse.jetty.http.CookieCompliance;
import org.eclipse.jetty.http.HttpCookie;
import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpException;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpURI;
import org.eclipse.jetty.io.Connection;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.server.CookieCache;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.util.Fields;
import org.eclipse.jetty.util.NanoTime;
import org.eclipse.jetty.util.UrlEncoded;
import org.jspecify.annotations.Nullable;

import dev.wsproxy.AuthDecision;
import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;
import dev.wsproxy.SelectionContext;

/** The public view of a Jetty request, for validators, selectors and listeners. */
final class HandshakeRequestView implements SelectionContext {

    static final InetSocketAddress UNKNOWN = InetSocketAddress.createUnresolved("unknown", 0);

    private final Request request;
    private final Route route;
    private @Nullable URI uri;
    /** {@link #clientCertificates()}, read when first asked for. */
    private @Nullable List<X509Certificate> clientCertificates;
    /** Backends this handshake already failed on: not candidates any more. */
    final Set<BackendState> tried = new HashSet<>();
    /** The backend of the last attempt ({@link #attempt}), for the access log; {@code null} before the first. */
    private volatile @Nullable Backend attempted;
    /**
     * The route's lists of backends the selector read in the current attempt ({@link #candidates}, {@link #backends};
     * one unless the list was replaced meanwhile): a backend picked from one of them is that list's, even if it has
     * been removed since ({@link RouteBackends#stateOf}). The selector runs on the handshake's thread, during
     * {@code select}.
     */
    private final List<List<BackendState>> seen = new java.util.ArrayList<>(1);

    private final ClientIdentity identity;
    private AuthDecision authorization = AuthDecision.allow();

    HandshakeRequestView(Request request, Route route, ClientIdentity identity) {
        this.request = request;
        this.route = route;
        this.identity = identity;
    }

    ClientIdentity identity() {
        return identity;
    }

    /** Records what the route's authenticator allowed: its backend headers and attributes. */
    void authorized(AuthDecision decision) {
        this.authorization = decision;
    }

    /**
     * Sets the authenticator's headers on the backend request, after removing those the client sent under those names
     * and under the names the authenticator removed, with {@code _} read as {@code -}: CGI-style backends merge the
     * two spellings, so {@code X_User_Id} must not pass for {@code X-User-Id}.
     */
    void addAuthorizedHeaders(HttpFields.Mutable out) {
        List<Map.Entry<String, String>> added = authorization.headers();
        List<String> removed = authorization.removedHeaders();
        if (added.isEmpty() && removed.isEmpty()) {
            return;
        }
        Set<String> owned = new HashSet<>();
        for (Map.Entry<String, String> header : added) {
            owned.add(ForwardedHeaders.canonical(header.getKey().toLowerCase(Locale.ROOT)));
        }
        for (String name : removed) {
            owned.add(ForwardedHeaders.canonical(name.toLowerCase(Locale.ROOT)));
        }
        for (Iterator<HttpField> fields = out.iterator(); fields.hasNext(); ) {
            if (owned.contains(ForwardedHeaders.canonical(fields.next().getLowerCaseName()))) {
                fields.remove();
            }
        }
        for (Map.Entry<String, String> header : added) {
            out.add(header.getKey(), header.getValue());
        }
    }

    @Override
    public Map<String, Object> attributes() {
        return authorization.attributes();
    }

    @Override
    public String route() {
        return route.prefix();
    }

    @Override
    public InetSocketAddress clientAddress() {
        return identity.clientAddress;
    }

    static InetSocketAddress socketAddress(Request request) {
        SocketAddress address = request.getConnectionMetaData().getRemoteSocketAddress();
        return address instanceof InetSocketAddress inet ? inet : UNKNOWN;
    }

    @Override
    public URI uri() {
        URI result = uri;
        if (result == null) {
            result = requestUri(request, identity);
            uri = result;
        }
        return result;
    }

    /**
     * The URI the client asked for, its path and query as sent, with what {@code java.net.URI} refuses encoded
     * ({@link PathEncoding}): browsers send {@code { } | ^} unencoded in queries, and Jetty takes them, so a URI made
     * from the request's text alone failed for them, and {@code HashKeys.path()} and {@code sameOrigin} saw no path
     * and no host. The authority is {@link ClientIdentity#host} from a trusted proxy (checked there), else the
     * request's own; {@code invalid} only for one that still does not parse.
     */
    static URI requestUri(Request request, ClientIdentity identity) {
        String scheme = identity.secure ? "https://" : "http://";
        HttpURI requested = request.getHttpURI();
        String authority = identity.peerTrusted && identity.host != null ? identity.host : requested.getAuthority();
        if (authority == null || authority.isEmpty()) {
            authority = "invalid"; // no Host (HTTP/1.0): not the host "null"
        }
        String path = requested.getPath() == null || requested.getPath().isEmpty() ? "/"
                : PathEncoding.encodeKeepingEscapes(requested.getPath());
        String query = requested.getQuery() == null ? ""
                : "?" + PathEncoding.encodeQueryKeepingEscapes(requested.getQuery());
        try {
            return URI.create(scheme + authority + path + query);
        } catch (IllegalArgumentException e) {
            try {
                return URI.create(scheme + "invalid" + path + query);
            } catch (IllegalArgumentException stillInvalid) {
                return URI.create(scheme + "invalid/");
            }
        }
    }

    @Override
    public boolean secure() {
        return identity.secure;
    }

    @Override
    public List<X509Certificate> clientCertificates() {
        List<X509Certificate> result = clientCertificates;
        if (result == null) {
            result = peerCertificates(request);
            clientCertificates = result; // an immutable list: safe to publish through a race, like uri
        }
        return result;
    }

    /**
     * The certificates the TLS connection's peer presented, leaf first. From the request's
     * {@code EndPoint.SslSessionData} attribute, which Jetty's {@code SecureRequestCustomizer} sets (the proxy's own
     * listener has one) and a {@code ForwardedRequestCustomizer} replaces with what a front proxy's headers say (then
     * none: the connection's certificate is the front proxy's); without a customizer (a user's connector when
     * mounted), from the connection's end point, which is the TLS one over HTTP/1.1 and HTTP/2 alike. Jetty reads the
     * chain from the {@code SSLSession} once per connection and keeps it.
     */
    static List<X509Certificate> peerCertificates(Request request) {
        EndPoint.SslSessionData tls = request.getAttribute(EndPoint.SslSessionData.ATTRIBUTE)
                instanceof EndPoint.SslSessionData data ? data : null;
        if (tls == null) {
            Connection connection = request.getConnectionMetaData().getConnection();
            EndPoint endPoint = connection == null ? null : connection.getEndPoint();
            tls = endPoint == null ? null : endPoint.getSslSessionData();
        }
        X509Certificate[] chain = tls == null ? null : tls.peerCertificates();
        return chain == null ? List.of() : List.of(chain);
    }

    @Override
    public @Nullable String header(String name) {
        return request.getHeaders().get(name);
    }

    @Override
    public List<String> headers(String name) {
        return request.getHeaders().getValuesList(name);
    }

    @Override
    public Set<String> headerNames() {
        return new LinkedHashSet<>(request.getHeaders().getFieldNamesCollection());
    }

    @Override
    public @Nullable String cookie(String name) {
        for (HttpCookie cookie : cookies()) {
            if (cookie.getName().equals(name)) {
                return cookie.getValue();
            }
        }
        return null;
    }

    /**
     * The request's cookies, parsed with the connector's cookie compliance. A header that compliance cannot parse is
     * the client's doing, not the selector's or the authenticator's failure: a space in a value under
     * {@code RFC6265_STRICT} (Jetty's {@code 400} thrown at the first read), an obsolete {@code $Version} that is no
     * number under {@code RFC2965} (a {@code NumberFormatException}). It is parsed as the default compliance parses it
     * instead, the cookies it cannot read skipped, as for a query that does not decode strictly
     * ({@link #queryFields}). The header goes to the backend as it came, which applies its own rules.
     */
    private List<HttpCookie> cookies() {
        try {
            return Request.getCookies(request);
        } catch (RuntimeException e) {
            if (!(e instanceof HttpException) && !(e instanceof IllegalArgumentException)) {
                throw e;
            }
            CookieCache lenient = new CookieCache(CookieCompliance.RFC6265);
            lenient.parseCookies(request.getHeaders(), ComplianceViolation.Listener.NOOP);
            return lenient;
        }
    }

    @Override
    public @Nullable String queryParameter(String name) {
        Fields fields = queryFields();
        return fields == null ? null : fields.getValue(name);
    }

    @Override
    public List<String> queryParameters(String name) {
        Fields fields = queryFields();
        return fields == null ? List.of() : List.copyOf(fields.getValuesOrEmpty(name));
    }

    /** The query's parameters, each with its values in the order they came; {@code null} without a query. */
    private @Nullable Fields queryFields() {
        String query = request.getHttpURI().getQuery();
        if (query == null) {
            return null;
        }
        try {
            return Request.extractQueryParameters(request);
        } catch (RuntimeException e) {
            if (!(e instanceof HttpException)) {
                throw e;
            }
            // Jetty's "Bad query" (a % that starts no escape, bytes that are not UTF-8): the client's doing, not the
            // selector's or the authenticator's failure. Decoded leniently instead, a bad escape kept as it is and bad
            // bytes as U+FFFD, so that every other parameter reads as the backend will read it (the proxy forwards
            // the query, with a lone % encoded): ?x=%&room=admin has room=admin on both sides.
            Fields fields = new Fields(true);
            UrlEncoded.decodeUtf8To(query, 0, query.length(), fields::add, true, true, true);
            return fields;
        }
    }

    @Override
    public List<String> subprotocols() {
        return request.getHeaders().getCSV(HttpHeader.SEC_WEBSOCKET_SUBPROTOCOL, true);
    }

    @Override
    public List<Backend> backends() {
        return RouteBackends.backendsOf(seen(route.backends().states()));
    }

    @Override
    public List<BackendStatus> candidates() {
        return RouteBackends.candidates(seen(route.backends().states()), tried, route.maxPendingBackendHandshakes());
    }

    private List<BackendState> seen(List<BackendState> states) {
        if (seen.isEmpty() || seen.get(seen.size() - 1) != states) {
            seen.add(states);
        }
        return states;
    }

    /**
     * Starts an attempt on {@code state}'s backend: adds it to {@link #tried} and returns {@code true}, or returns
     * {@code false} when this request tried it already. The backend is the one the access log names from then on.
     */
    boolean attempt(BackendState state) {
        attempted = state.backend();
        return tried.add(state);
    }

    /** The backend of the last attempt, or {@code null} when none was made. */
    @Nullable Backend attempted() {
        return attempted;
    }

    /** The request's method, as the client sent it. */
    String method() {
        return request.getMethod();
    }

    /** The milliseconds since the request began (its first byte was read). */
    long elapsedMillis() {
        return NanoTime.millisSince(request.getBeginNanoTime());
    }

    /** Forgets the lists seen by the previous attempt's selector; called before each selection. */
    void selecting() {
        seen.clear();
    }

    /** The lists of backends the selector read since {@link #selecting}. */
    List<List<BackendState>> seenBackends() {
        return seen;
    }

    /** The most of a request's path {@link #toString} writes. */
    static final int MAX_LOGGED_PATH = 200;
    /** The most of a request's method {@link #toString} writes (any token is a method to Jetty). */
    static final int MAX_LOGGED_METHOD = 20;

    /**
     * The request for a log line ({@code Backend ... failed for GET /ws/chat from 203.0.113.7}): the path only, a query
     * may carry a token ({@code access_token=...}); cut to {@value #MAX_LOGGED_PATH} chars, as a client may send one of
     * several KiB on each request; and the client as the access log names it ({@link AccessLog#client}), without the
     * port of {@code InetSocketAddress}'s form ({@code /127.0.0.1:60556}, {@code /[0:0:0:0:0:0:0:1]:60556}).
     */
    @Override
    public String toString() {
        return LogText.printable(request.getMethod(), MAX_LOGGED_METHOD) + " "
                + LogText.printable(request.getHttpURI().getPath(), MAX_LOGGED_PATH) + " from "
                + AccessLog.client(clientAddress());
    }
}
