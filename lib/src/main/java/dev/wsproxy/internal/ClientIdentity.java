package dev.wsproxy.internal;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.Arrays;
import java.util.List;

import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.server.Request;
import org.jspecify.annotations.Nullable;

/**
 * Who the client is, as far as the proxy trusts it. From a peer outside the trusted proxies, the peer itself, whatever
 * its forwarded headers say. From a trusted proxy, like nginx's {@code set_real_ip_from} with
 * {@code real_ip_recursive on}: the right-most {@code X-Forwarded-For} hop that is not a trusted proxy, and the
 * scheme and host that proxy forwarded. Computed once per request.
 */
final class ClientIdentity {

    static final String ATTRIBUTE = ClientIdentity.class.getName();

    final String peer;
    final boolean peerTrusted;
    final String clientIp;
    /**
     * The client's address as {@link Cidr#normalize} gives it (4 bytes for IPv4 and IPv4-mapped IPv6, else 16), the
     * one {@link #clientIp} writes; {@code null} for a peer without an IP address (a Unix-domain socket).
     */
    final byte @Nullable [] clientBytes;
    final InetSocketAddress clientAddress;
    final boolean secure;
    final @Nullable String host;

    private ClientIdentity(String peer, boolean peerTrusted, String clientIp, byte @Nullable [] clientBytes,
            InetSocketAddress clientAddress, boolean secure, @Nullable String host) {
        this.peer = peer;
        this.peerTrusted = peerTrusted;
        this.clientIp = clientIp;
        this.clientBytes = clientBytes;
        this.clientAddress = clientAddress;
        this.secure = secure;
        this.host = host;
    }

    /**
     * The identity of the request, computed on first use and kept as a request attribute. The proxy's route handling
     * computes it first thing, so that attribute also tells the standalone server's error handler that the proxy took
     * the request, and logs it ({@link WebSocketProxyHandler#tookRequest}).
     */
    static ClientIdentity of(Request request, List<Cidr> trusted) {
        Object cached = request.getAttribute(ATTRIBUTE);
        if (cached instanceof ClientIdentity identity) {
            return identity;
        }
        ClientIdentity identity = compute(request, trusted);
        request.setAttribute(ATTRIBUTE, identity);
        return identity;
    }

    private static ClientIdentity compute(Request request, List<Cidr> trusted) {
        InetSocketAddress peerAddress = HandshakeRequestView.socketAddress(request);
        // The peer's text is the canonical one of its bytes, never Request.getRemoteAddr's: Jetty brackets IPv6
        // ("[0:0:0:0:0:0:0:1]"), which backends cannot parse in X-Real-IP, and which would name the same client
        // differently with and without trusted proxies. The per-address limits count by the bytes (ClientKey).
        byte[] peerBytes = peerAddress.getAddress() == null ? null : Cidr.normalize(peerAddress.getAddress());
        String peer = peerBytes == null ? Request.getRemoteAddr(request) : Cidr.text(peerBytes);
        HttpFields headers = request.getHeaders();
        if (trusted.isEmpty()) {
            // The common case: nothing to parse, the peer is the client.
            return new ClientIdentity(peer, false, peer, peerBytes, peerAddress, request.isSecure(),
                    ForwardedHeaders.host(request, headers));
        }
        String host = ForwardedHeaders.host(request, headers);
        if (peerBytes == null || !Cidr.anyContains(trusted, peerBytes)) {
            return new ClientIdentity(peer, false, peer, peerBytes, peerAddress, request.isSecure(), host);
        }
        byte[] client = rightmostUntrusted(headers.getValuesList(HttpHeader.X_FORWARDED_FOR), trusted, peerBytes);
        if (Arrays.equals(client, peerBytes)) {
            String realIp = headers.get("X-Real-IP");
            byte[] realBytes = realIp == null ? null : hop(realIp);
            if (realBytes != null && headers.get(HttpHeader.X_FORWARDED_FOR) == null) {
                client = realBytes;
            }
        }
        String proto = headers.get(HttpHeader.X_FORWARDED_PROTO);
        boolean secure = proto == null ? request.isSecure()
                : proto.trim().equalsIgnoreCase("https") || proto.trim().equalsIgnoreCase("wss");
        String forwardedHost = forwardedHost(headers.get(HttpHeader.X_FORWARDED_HOST));
        boolean clientIsPeer = Arrays.equals(client, peerBytes);
        return new ClientIdentity(peer, true, clientIsPeer ? peer : Cidr.text(client), client,
                clientIsPeer ? peerAddress : new InetSocketAddress(ipAddress(client), 0), secure,
                forwardedHost != null ? forwardedHost : host);
    }

    /**
     * The host a trusted proxy forwarded: the first entry of its {@code X-Forwarded-Host} (the host the client asked
     * the first proxy for; a chain of proxies appends theirs, {@code a.example, b.example}), when it is a host with an
     * optional port, else {@code null} (the request's {@code Host} is used). Taken whole, a list or a value with a
     * space was no authority: the request's URI could not be built, and origin checks and path hashing failed (500).
     */
    static @Nullable String forwardedHost(@Nullable String value) {
        if (value == null) {
            return null;
        }
        int comma = value.indexOf(',');
        String first = (comma < 0 ? value : value.substring(0, comma)).trim();
        if (first.isEmpty()) {
            return null;
        }
        // A host and an optional port, as an origin's (so chat_app:8080, a docker-compose name java.net.URI takes for
        // no host, is one): no path, not even "/", and no empty port.
        boolean hostAndPort = !first.endsWith("/") && !first.endsWith(":")
                && Origins.parse("http://" + first) != null;
        return hostAndPort ? first : null;
    }

    /**
     * Walks the chain from the right, its lines last to first and each line's hops right to left: trusted hops are
     * skipped, the first other one is the client. Hops are split at every comma, as nginx's realip module splits
     * them, never read as an RFC 9110 list with quoted strings (Jetty's {@code getCSV}): a trusted proxy appends the
     * peer it saw to the header the client sent ({@code $proxy_add_x_forwarded_for}), so a client that sent
     * {@code X-Forwarded-For: "} had that quote swallow the proxy's hop, and Jetty's parser refused the unclosed
     * quote with an exception: the request got Jetty's 400, with no access line and no listener event. A hop in
     * double quotes is read without them, as that parser read it.
     */
    private static byte[] rightmostUntrusted(List<String> lines, List<Cidr> trusted, byte[] peer) {
        byte[] candidate = peer;
        for (int line = lines.size() - 1; line >= 0; line--) {
            String value = lines.get(line);
            int end = value.length();
            while (end >= 0) {
                int comma = value.lastIndexOf(',', end - 1);
                String text = value.substring(comma + 1, end).trim();
                end = comma;
                if (text.isEmpty()) {
                    continue; // "a, , b" and a trailing comma: no hop, as nginx and Jetty's parser skip them
                }
                byte[] hop = hop(text.length() > 1 && text.charAt(0) == '"' && text.charAt(text.length() - 1) == '"'
                        ? text.substring(1, text.length() - 1) : text);
                if (hop == null) {
                    // Garbage in the chain: stop at the last hop we could read.
                    return candidate;
                }
                candidate = hop;
                if (!Cidr.anyContains(trusted, hop)) {
                    return candidate;
                }
            }
        }
        return candidate;
    }

    /**
     * The address of one forwarded hop, without the port some balancers add (Azure Application Gateway sends
     * {@code 203.0.113.7:51234} and {@code [2001:db8::1]:443}); {@code null} for anything else. Read as garbage, a hop
     * with a port made every client the balancer itself. An IPv6 address without brackets has no port: its last
     * group is part of it ({@code 2001:db8::1:443} is an address).
     */
    static byte @Nullable [] hop(String value) {
        String hop = value.trim();
        int end = hop.length();
        if (hop.startsWith("[")) {
            end = hop.indexOf(']');
            if (end < 0 || !isPortOrNothing(hop, end + 1)) {
                return null;
            }
            end++;
        } else {
            int colon = hop.indexOf(':');
            if (colon >= 0 && colon == hop.lastIndexOf(':')) {
                if (!isPortOrNothing(hop, colon)) {
                    return null;
                }
                end = colon;
            }
        }
        return Cidr.literal(hop.substring(0, end));
    }

    /** Whether {@code text} from {@code from} on is empty or {@code :} and a port number. */
    private static boolean isPortOrNothing(String text, int from) {
        if (from == text.length()) {
            return true;
        }
        int digits = text.length() - from - 1;
        if (text.charAt(from) != ':' || digits < 1 || digits > 5) {
            return false;
        }
        for (int i = from + 1; i < text.length(); i++) {
            if (text.charAt(i) < '0' || text.charAt(i) > '9') {
                return false;
            }
        }
        return Integer.parseInt(text, from + 1, text.length(), 10) <= 65535;
    }

    private static InetAddress ipAddress(byte[] address) {
        try {
            return InetAddress.getByAddress(address);
        } catch (UnknownHostException e) {
            throw new IllegalStateException(e); // never: Cidr gives 4 or 16 bytes, the lengths this takes
        }
    }
}
