package dev.wsproxy.internal;

import java.util.Base64;
import java.util.List;
import java.util.Locale;

import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpMethod;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.http.HttpVersion;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.TunnelSupport;
import org.jspecify.annotations.Nullable;

/**
 * Checks a client's upgrade request against RFC 6455 section 4.2.1 before anything else happens, so that a malformed
 * request never reaches a backend.
 */
final class UpgradeChecks {

    /** Why a request is refused, and with which status. */
    record Refusal(int status, String reason) {
    }

    private UpgradeChecks() {
    }

    /**
     * Tells whether the request asks for a WebSocket upgrade; other requests are plain HTTP. A request offering
     * another upgrade ({@code Upgrade: h2c}, sent by default by the JDK's HTTP client) is plain HTTP too: a server
     * may ignore an upgrade offer (RFC 9110 section 7.8), and the HTTP forwarder drops {@code Upgrade} as hop-by-hop.
     */
    static boolean isUpgradeAttempt(Request request) {
        return request.getHeaders().contains(HttpHeader.UPGRADE, "websocket");
    }

    /** Returns why the upgrade request must be refused, or {@code null} when it is a valid WebSocket handshake. */
    static @Nullable Refusal check(Request request) {
        HttpFields headers = request.getHeaders();
        if (!HttpMethod.GET.is(request.getMethod())) {
            return bad("upgrade method is not GET");
        }
        if (request.getConnectionMetaData().getHttpVersion() != HttpVersion.HTTP_1_1) {
            return bad("upgrade is not HTTP/1.1");
        }
        if (!headers.contains(HttpHeader.CONNECTION, "upgrade")) {
            return bad("Connection does not list upgrade");
        }
        Refusal version = version(headers);
        if (version != null) {
            return version;
        }
        List<String> keys = headers.getValuesList(HttpHeader.SEC_WEBSOCKET_KEY);
        if (keys.size() != 1 || !isValidKey(keys.get(0))) {
            return bad("Sec-WebSocket-Key is missing or malformed");
        }
        return bodyOrAmbiguity(request, headers);
    }

    /** {@code 426} unless the request asks for version 13 of the protocol, once. */
    private static @Nullable Refusal version(HttpFields headers) {
        List<String> versions = headers.getValuesList(HttpHeader.SEC_WEBSOCKET_VERSION);
        return versions.size() == 1 && "13".equals(versions.get(0).trim()) ? null
                : new Refusal(HttpStatus.UPGRADE_REQUIRED_426, "Sec-WebSocket-Version is not 13");
    }

    /** The last checks of a handshake, either kind: no body, and nothing the hooks and the backend could read apart. */
    private static @Nullable Refusal bodyOrAmbiguity(Request request, HttpFields headers) {
        if (headers.contains(HttpHeader.TRANSFER_ENCODING)
                || (headers.contains(HttpHeader.CONTENT_LENGTH) && headers.getLongField(HttpHeader.CONTENT_LENGTH) != 0)) {
            return bad("upgrade request has a body");
        }
        String ambiguity = ambiguity(request);
        return ambiguity == null ? null : bad(ambiguity);
    }

    /**
     * Returns why a request on a route, an upgrade or plain HTTP, must be refused with {@code 400} before any hook
     * runs because the hooks and the backend could read it differently, or {@code null}: a path with dot segments
     * ({@link #hasDotSegment}), or a repeated {@code Authorization} or {@code Origin} ({@link #repeatedHeader}).
     */
    static @Nullable String ambiguity(Request request) {
        if (hasDotSegment(request.getHttpURI().getPath())) {
            return DOT_SEGMENTS;
        }
        return repeatedHeader(request.getHeaders());
    }

    /** The reason a request whose path has dot segments is refused. */
    static final String DOT_SEGMENTS = "path with dot segments";

    /**
     * Tells whether a raw request path has a {@code .} or {@code ..} segment, also with path parameters
     * ({@code ..;x}) or with its dots percent-encoded ({@code %2e}, {@code %u002e}, when the connector's URI compliance
     * lets those through). A route is matched on the path with such segments resolved, but an authenticator or
     * selector sees the path as sent, as does a backend without a base path, which resolves them its own way (Tomcat
     * drops path parameters first): a check on {@code /ws/tenant/mine/../other/} passed what the backend served as
     * {@code /ws/tenant/other/}. Browsers and WebSocket clients resolve dot segments before they send a request, so
     * such a path is refused with {@code 400} rather than rewritten.
     */
    static boolean hasDotSegment(@Nullable String rawPath) {
        if (rawPath == null || rawPath.indexOf('.') < 0 && rawPath.indexOf('%') < 0) {
            return false;
        }
        int start = 0;
        while (start <= rawPath.length()) {
            int end = rawPath.indexOf('/', start);
            if (end < 0) {
                end = rawPath.length();
            }
            int parameters = rawPath.indexOf(';', start);
            String segment = rawPath.substring(start, parameters >= 0 && parameters < end ? parameters : end)
                    .toLowerCase(Locale.ROOT).replace("%u002e", ".").replace("%2e", ".");
            if (segment.equals(".") || segment.equals("..")) {
                return true;
            }
            start = end + 1;
        }
        return false;
    }

    /**
     * Returns the reason a request with more than one {@code Authorization} or {@code Origin} line is refused, or
     * {@code null}. The proxy, an authenticator and an origin validator read the first, and the backend got every
     * line: one that reads the last saw a credential or an origin the proxy never checked. nginx refuses a repeated
     * {@code Authorization} ("client sent duplicate header line"); RFC 6454 section 7.2 lets a user agent send one
     * {@code Origin} at most. Names compare case-insensitively.
     */
    static @Nullable String repeatedHeader(HttpFields headers) {
        boolean authorization = false;
        boolean origin = false;
        for (HttpField field : headers) {
            if (field.is(HttpHeader.AUTHORIZATION.asString())) {
                if (authorization) {
                    return "repeated Authorization header";
                }
                authorization = true;
            } else if (field.is(HttpHeader.ORIGIN.asString())) {
                if (origin) {
                    return "repeated Origin header";
                }
                origin = true;
            }
        }
        return null;
    }

    /**
     * Tells whether a request that is not an HTTP/1.1 upgrade ({@link #isUpgradeAttempt}) opens a WebSocket over
     * HTTP/2 (RFC 8441): an extended {@code CONNECT} whose {@code :protocol} is {@code websocket}. Browsers send one on
     * an h2 connection whose server advertises {@code SETTINGS_ENABLE_CONNECT_PROTOCOL}, which Jetty's HTTP/2
     * connection factories do by default, and do not fall back to HTTP/1.1 when it fails. A {@code CONNECT} with
     * another protocol, or none (a plain tunnel), is not one: plain HTTP, which the forwarder refuses.
     */
    static boolean isExtendedConnect(Request request) {
        if (!HttpMethod.CONNECT.is(request.getMethod())) {
            return false;
        }
        TunnelSupport tunnel = request.getTunnelSupport();
        return tunnel != null && "websocket".equalsIgnoreCase(tunnel.getProtocol());
    }

    /**
     * Returns why an extended {@code CONNECT} ({@link #isExtendedConnect}) must be refused, or {@code null} when it is
     * a valid RFC 8441 handshake: section 5's counterpart of {@link #check}, with the same statuses. It has no
     * {@code Connection}, {@code Upgrade} or {@code Sec-WebSocket-Key} (RFC 8441 section 5 leaves them out); the
     * stream's DATA frames are the tunnel, so a {@code Content-Length} other than 0 is a body, as in {@link #check}.
     */
    static @Nullable Refusal checkExtendedConnect(Request request) {
        if (request.getConnectionMetaData().getHttpVersion() != HttpVersion.HTTP_2) {
            return bad("extended CONNECT is not HTTP/2");
        }
        HttpFields headers = request.getHeaders();
        Refusal version = version(headers);
        return version != null ? version : bodyOrAmbiguity(request, headers);
    }

    /** A key is 16 random bytes in base64: 24 characters ending in {@code ==}. */
    private static boolean isValidKey(String key) {
        String trimmed = key.trim();
        if (trimmed.length() != 24) {
            return false;
        }
        try {
            return Base64.getDecoder().decode(trimmed).length == 16;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private static Refusal bad(String reason) {
        return new Refusal(HttpStatus.BAD_REQUEST_400, reason);
    }
}
