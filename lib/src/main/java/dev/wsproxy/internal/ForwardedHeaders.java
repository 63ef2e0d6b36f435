package dev.wsproxy.internal;

import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.server.Request;
import org.jspecify.annotations.Nullable;

/**
 * The headers a backend gets: the client's end-to-end headers, then the proxy's own. Hop-by-hop headers (RFC 9110
 * section 7.6.1), any header the client names in {@code Connection}, and the client's WebSocket handshake headers
 * are dropped first, so a client can never remove a header the proxy sets by naming it in {@code Connection}.
 */
final class ForwardedHeaders {

    static final String X_FORWARDED_FOR = "X-Forwarded-For";
    static final String X_REAL_IP = "X-Real-IP";
    static final String X_FORWARDED_PROTO = "X-Forwarded-Proto";
    static final String X_FORWARDED_HOST = "X-Forwarded-Host";

    /** Never copied from the client: hop-by-hop, framing, or set by the proxy or by the backend handshake. */
    private static final Set<String> NOT_COPIED = Set.of(
            "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "content-length", "host",
            "x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host");

    private ForwardedHeaders() {
    }

    /**
     * Copies what a backend should see of the client's request into {@code out}.
     *
     * @param preserveHost send the client's {@code Host} (otherwise the backend URI's authority is used)
     * @param websocket {@code true} for the backend handshake, which drops the client's {@code Sec-WebSocket-*}
     */
    static void copy(Request client, HttpFields.Mutable out, boolean preserveHost, boolean websocket) {
        HttpFields in = client.getHeaders();
        Set<String> named = connectionTokens(in);
        for (HttpField field : in) {
            String name = field.getLowerCaseName();
            if (NOT_COPIED.contains(name) || named.contains(name) || name.startsWith("proxy-")
                    || (websocket && name.startsWith("sec-websocket-"))) {
                continue;
            }
            out.add(field);
        }
        String host = in.get(HttpHeader.HOST);
        if (preserveHost && host != null) {
            out.put(HttpHeader.HOST, host);
        }
        addProxyHeaders(client, in, named, host, out);
    }

    private static void addProxyHeaders(Request client, HttpFields in, Set<String> named, @Nullable String host,
            HttpFields.Mutable out) {
        String peer = Request.getRemoteAddr(client);
        List<String> earlier = named.contains("x-forwarded-for") ? List.of() : in.getValuesList(X_FORWARDED_FOR);
        String chain = earlier.isEmpty() ? peer : String.join(", ", earlier) + ", " + peer;
        out.put(X_FORWARDED_FOR, chain);
        out.put(X_REAL_IP, peer);
        out.put(X_FORWARDED_PROTO, client.isSecure() ? "https" : "http");
        if (host != null) {
            out.put(X_FORWARDED_HOST, host);
        }
    }

    private static Set<String> connectionTokens(HttpFields headers) {
        Set<String> tokens = new HashSet<>();
        for (String token : headers.getCSV(HttpHeader.CONNECTION, false)) {
            tokens.add(token.trim().toLowerCase(Locale.ROOT));
        }
        return tokens;
    }
}
