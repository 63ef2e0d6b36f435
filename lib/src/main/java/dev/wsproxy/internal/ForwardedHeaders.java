package dev.wsproxy.internal;

import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpURI;
import org.eclipse.jetty.http.HttpVersion;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.util.HostPort;
import org.eclipse.jetty.util.URIUtil;
import org.jspecify.annotations.Nullable;

/**
 * The headers a backend gets: the client's end-to-end headers, then the proxy's own. Hop-by-hop headers (RFC 9110
 * section 7.6.1), any header the client names in {@code Connection}, and the client's WebSocket handshake headers
 * are dropped first, so a client can never remove a header the proxy sets by naming it in {@code Connection}.
 *
 * <p>Forwarding headers ({@code X-Forwarded-*}, {@code X-Real-IP}, {@code Forwarded}) never pass as they came, from
 * any peer: the proxy sets {@code X-Forwarded-For}, {@code X-Real-IP}, {@code X-Forwarded-Proto} and
 * {@code X-Forwarded-Host} from the {@link ClientIdentity} it computed (a trusted proxy's chain extended, its scheme
 * and host taken when valid), and drops the rest. A trusted proxy's {@code Forwarded}, {@code X-Forwarded-Port},
 * {@code -Prefix}, {@code -Ssl} or {@code -Server} passed before, next to the computed headers: load balancers that
 * neither set nor strip them (an AWS ALB or a GCP load balancer and {@code Forwarded}) let the client's own through,
 * and a backend that prefers RFC 7239 (Jetty's {@code ForwardedRequestCustomizer}, Spring's
 * {@code ForwardedHeaderFilter}) read the client's forgery instead of the proxy's answer. So the backend never gets a
 * forwarding header the client wrote next to the ones the proxy computed.
 *
 * <p>The client-address headers of CDNs and platforms ({@link #CLIENT_ADDRESS}: {@code True-Client-IP},
 * {@code CF-Connecting-IP}, {@code X-Client-IP}, {@code Client-IP} and others) are read by backends and their
 * libraries before {@code X-Forwarded-For} (Go's chi reads {@code True-Client-IP} first, Node's request-ip
 * {@code X-Client-IP}, Rails {@code Client-IP}), and a client could name any address in them. Each one that arrives
 * goes on with the client address the proxy computed, {@code X-Real-IP}'s, whoever sent it: a backend that reads one
 * still finds it (behind a trusted CDN that sets it, the same address), and never a value the client chose. The ones
 * that carry a list or another form ({@code X-Forwarded}, {@code Forwarded-For}, {@code X-Original-Forwarded-For},
 * {@code CF-Connecting-IPv6}, {@code CF-Pseudo-IPv4}) are dropped as forwarding headers.
 *
 * <p>Names are compared with {@code _} read as {@code -}: backends that map header names to CGI-style variables
 * ({@code HTTP_X_FORWARDED_FOR}: Rack, many WSGI servers) read {@code X_Forwarded_For} as {@code X-Forwarded-For}, so
 * a client's {@code X_Forwarded_For} would otherwise stand beside the proxy's and be read first. {@code Proxy} is
 * dropped too: no client has a reason to send it, and CGI-style backends turn it into {@code HTTP_PROXY}, the
 * outgoing proxy of their HTTP clients ("httpoxy").
 */
final class ForwardedHeaders {

    static final String X_FORWARDED_FOR = "X-Forwarded-For";
    static final String X_REAL_IP = "X-Real-IP";
    static final String X_FORWARDED_PROTO = "X-Forwarded-Proto";
    static final String X_FORWARDED_HOST = "X-Forwarded-Host";

    /** Hop-by-hop headers (RFC 9110 section 7.6.1): a proxy passes none on, in either direction. */
    private static final Set<String> HOP_BY_HOP = Set.of(
            "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade");

    /**
     * Besides the hop-by-hop ones and the forwarding ones ({@link #isForwarding}), never copied from the client:
     * framing, or set by the proxy.
     */
    private static final Set<String> NOT_COPIED = Set.of("content-length", "host", "proxy");

    /**
     * Headers that name the client by one address, by {@link #canonical} name, with the name the proxy sends them
     * under: never copied; each that arrives goes on with the client address the proxy computed.
     */
    private static final Map<String, String> CLIENT_ADDRESS = Map.of(
            "true-client-ip", "True-Client-IP", // Akamai, Cloudflare
            "cf-connecting-ip", "CF-Connecting-IP",
            "fastly-client-ip", "Fastly-Client-IP",
            "do-connecting-ip", "DO-Connecting-IP", // DigitalOcean
            "x-appengine-user-ip", "X-AppEngine-User-IP",
            "x-azure-clientip", "X-Azure-ClientIP", // Azure Front Door
            "x-client-ip", "X-Client-IP",
            "client-ip", "Client-IP",
            "x-cluster-client-ip", "X-Cluster-Client-IP");

    /** Forwarding headers by other names, all dropped: lists of hops, or a client named in another form. */
    private static final Set<String> OTHER_FORWARDING = Set.of(
            "x-forwarded", "forwarded-for", "x-original-forwarded-for", "cf-connecting-ipv6", "cf-pseudo-ipv4");

    private ForwardedHeaders() {
    }

    /**
     * Copies what a backend should see of the client's request into {@code out}.
     *
     * @param preserveHost send the client's {@code Host} (otherwise the backend URI's authority is used)
     * @param websocket {@code true} for the backend handshake, which drops the client's {@code Sec-WebSocket-*}
     */
    static void copy(Request client, HttpFields.Mutable out, boolean preserveHost, boolean websocket,
            ClientIdentity identity) {
        HttpFields in = client.getHeaders();
        Set<String> named = connectionTokens(in);
        boolean http2 = client.getConnectionMetaData().getHttpVersion() == HttpVersion.HTTP_2;
        StringBuilder cookies = null;
        Set<String> clientAddress = null;
        for (HttpField field : in) {
            String name = canonical(field.getLowerCaseName());
            String addressHeader = CLIENT_ADDRESS.get(name);
            if (addressHeader != null) {
                // Named in Connection, it was meant for this hop only: it goes, like any header so named.
                if (!named.contains(name)) {
                    clientAddress = clientAddress == null ? new LinkedHashSet<>() : clientAddress;
                    clientAddress.add(addressHeader);
                }
                continue;
            }
            if (!isEndToEnd(name, named) || NOT_COPIED.contains(name) || isForwarding(name)
                    || (websocket && name.startsWith("sec-websocket-"))) {
                continue;
            }
            if (http2 && name.equals("cookie")) {
                // HTTP/2 clients split their cookies into one field each (browsers do, RFC 9113 section 8.2.3), which
                // must be joined into one Cookie for an HTTP/1.1 backend: many read only the first.
                cookies = cookies == null ? new StringBuilder(field.getValue()) : cookies.append("; ")
                        .append(field.getValue());
                continue;
            }
            out.add(field);
        }
        if (cookies != null) {
            out.add(HttpHeader.COOKIE, cookies.toString());
        }
        String host = host(client, in);
        if (preserveHost && host != null) {
            out.put(HttpHeader.HOST, host);
        }
        addProxyHeaders(in, named, identity, out);
        if (clientAddress != null) {
            for (String addressHeader : clientAddress) {
                out.put(addressHeader, identity.clientIp);
            }
        }
    }

    /**
     * The host the client asked for: its {@code Host}, or, from an HTTP/2 client, which sends none, its
     * {@code :authority}, which RFC 9113 section 8.3.1 has an intermediary turn into the {@code Host} of an HTTP/1.1
     * request. {@code null} when there is neither (HTTP/1.0).
     *
     * <p>A {@code Host} that names another authority than the request's own (an HTTP/2 client's {@code :authority},
     * an HTTP/1.1 absolute-form target's) gives way to it, as RFC 9113 section 8.3.1 and RFC 9112 section 3.2.2 have
     * an intermediary do: that authority is what the proxy's checks read ({@code sameOrigin}, the request's
     * {@code uri()}). Jetty refuses such a request with 400 unless the connector's compliance allows
     * {@code MISMATCHED_AUTHORITY} ({@code RFC2616}, {@code LEGACY}); behind one that does, the backend got a
     * {@code Host} the proxy had checked nothing against. A {@code Host} that matches is sent as the client wrote it.
     */
    static @Nullable String host(Request client, HttpFields headers) {
        String host = headers.get(HttpHeader.HOST);
        HttpURI uri = client.getHttpURI();
        String authority = uri.getAuthority();
        boolean hasAuthority = authority != null && !authority.isEmpty();
        if (host == null) {
            return hasAuthority && client.getConnectionMetaData().getHttpVersion() == HttpVersion.HTTP_2
                    ? authority : null;
        }
        return hasAuthority && !sameAuthority(uri, host) ? authority : host;
    }

    /**
     * Whether {@code host} names the authority of {@code uri}, as Jetty's own check reads them: host names in any
     * case, a missing port as the scheme's default.
     */
    private static boolean sameAuthority(HttpURI uri, String host) {
        if (host.equalsIgnoreCase(uri.getAuthority())) {
            return true;
        }
        HostPort hostPort;
        try {
            hostPort = new HostPort(host);
        } catch (IllegalArgumentException e) {
            return false;
        }
        int defaultPort = URIUtil.getDefaultPortForScheme(uri.getScheme());
        int uriPort = uri.getPort() > 0 ? uri.getPort() : defaultPort;
        int hostPortNumber = hostPort.getPort() > 0 ? hostPort.getPort() : defaultPort;
        return uriPort == hostPortNumber && hostPort.getHost().equalsIgnoreCase(uri.getHost());
    }

    private static void addProxyHeaders(HttpFields in, Set<String> named, ClientIdentity identity,
            HttpFields.Mutable out) {
        List<String> earlier = !identity.peerTrusted || named.contains("x-forwarded-for")
                ? List.of() : in.getValuesList(X_FORWARDED_FOR);
        String chain;
        if (!earlier.isEmpty()) {
            chain = String.join(", ", earlier) + ", " + identity.peer;
        } else if (identity.peerTrusted && !identity.clientIp.equals(identity.peer)) {
            // A trusted proxy that named its client in X-Real-IP alone: the chain it would have sent, extended.
            chain = identity.clientIp + ", " + identity.peer;
        } else {
            chain = identity.peer;
        }
        out.put(X_FORWARDED_FOR, chain);
        out.put(X_REAL_IP, identity.clientIp);
        out.put(X_FORWARDED_PROTO, identity.secure ? "https" : "http");
        if (identity.host != null) {
            out.put(X_FORWARDED_HOST, identity.host);
        }
    }

    /**
     * Whether a {@link #canonical} name is a forwarding header: {@code X-Forwarded-*}, {@code X-Real-IP},
     * {@code Forwarded} or one of {@link #OTHER_FORWARDING}. None is copied from any peer (see the class comment); a
     * trusted proxy's {@code X-Forwarded-For} and {@code X-Real-IP} are read by {@link ClientIdentity}, not passed on.
     */
    private static boolean isForwarding(String canonicalName) {
        return canonicalName.startsWith("x-forwarded-") || canonicalName.equals("x-real-ip")
                || canonicalName.equals("forwarded") || OTHER_FORWARDING.contains(canonicalName);
    }

    /**
     * The header names a message's {@code Connection} lists, by {@link #canonical} name: each comma-separated element
     * of each {@code Connection} line, trimmed, without the double quotes around it if it has both. A
     * {@code connection-option} is a token (RFC 9110 section 7.6.1), so an element with a quote left open names no
     * header, and a quote does not carry across commas. Read as an RFC 9110 list with quoted strings (Jetty's
     * {@code getCSV}), an unclosed quote made its parser throw: an upgrade with {@code Connection: Upgrade, "x}, which
     * Jetty itself accepts, got 502 with a WARN and its stack trace for each request (its backend handshake "could not
     * start"), a plain request Jetty's bare 400 with no access line, and a backend's response so marked failed.
     */
    static Set<String> connectionTokens(HttpFields headers) {
        Set<String> tokens = new HashSet<>();
        for (HttpField field : headers) {
            String value = field.getHeader() == HttpHeader.CONNECTION ? field.getValue() : null;
            if (value == null) {
                continue;
            }
            int start = 0;
            while (start <= value.length()) {
                int comma = value.indexOf(',', start);
                int end = comma < 0 ? value.length() : comma;
                String token = value.substring(start, end).trim();
                if (token.length() > 1 && token.charAt(0) == '"' && token.charAt(token.length() - 1) == '"') {
                    token = token.substring(1, token.length() - 1).trim();
                }
                if (!token.isEmpty()) {
                    tokens.add(canonical(token.toLowerCase(Locale.ROOT)));
                }
                start = end + 1;
            }
        }
        return tokens;
    }

    /**
     * Whether a header may pass the proxy, by its {@link #canonical} name: neither hop-by-hop, nor a {@code Proxy-*}
     * header (meant for a proxy: {@code Proxy-Authorization}, {@code Proxy-Connection}), nor one its message names in
     * {@code Connection} ({@code named}, from {@link #connectionTokens}). The rule for requests, refusals and interim
     * responses alike; each drops its own framing and handshake headers besides.
     */
    static boolean isEndToEnd(String canonicalName, Set<String> named) {
        return !HOP_BY_HOP.contains(canonicalName) && !canonicalName.startsWith("proxy-")
                && !named.contains(canonicalName);
    }

    /** A lower-case header name with {@code _} read as {@code -} (see the class comment). */
    static String canonical(String lowerCaseName) {
        return lowerCaseName.indexOf('_') < 0 ? lowerCaseName : lowerCaseName.replace('_', '-');
    }
}
