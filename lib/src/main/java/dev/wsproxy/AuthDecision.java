package dev.wsproxy;

import static java.util.Objects.requireNonNull;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

import dev.wsproxy.internal.HttpTokens;

/**
 * What an {@link Authenticator} decided about one upgrade request: {@link #allow()}, possibly with headers for the
 * backend and attributes for the selector, or {@link #reject(int)} with a status and response headers. Immutable:
 * every {@code with} method returns a new decision.
 */
public final class AuthDecision {

    /** Headers the proxy or the WebSocket handshake owns: an authenticator cannot set them for the backend. */
    private static final Set<String> RESERVED_BACKEND = Set.of("connection", "upgrade", "host", "content-length",
            "transfer-encoding", "te", "trailer", "keep-alive", "x-forwarded-for", "x-forwarded-proto",
            "x-forwarded-host", "x-real-ip", "forwarded", "proxy");
    /**
     * Headers the backend handshake writes itself or never sends: it writes {@code Cache-Control: no-cache} and
     * {@code Pragma: no-cache} (as RFC 6455 section 4.1's example, browsers and Jetty's client do) and sends no
     * {@code Expect}, which is about a body (an upgrade has none; on plain HTTP, {@code 100-continue} is the client's
     * to ask for). Accepted here, they reached the backend on plain HTTP and were dropped from upgrades without a word.
     */
    private static final Set<String> RESERVED_HANDSHAKE = Set.of("cache-control", "pragma", "expect");
    /** Headers that frame or end the refusal: the proxy writes them itself. */
    private static final Set<String> RESERVED_RESPONSE = Set.of("connection", "upgrade", "content-length",
            "content-type", "transfer-encoding", "te", "trailer", "keep-alive");

    private static final AuthDecision ALLOW = new AuthDecision(0, List.of(), List.of(), Map.of());

    /** The shared {@link Authenticator#allowAll()}; the proxy skips it. */
    static final Authenticator ALLOW_ALL = new Authenticator() {
        private final CompletableFuture<AuthDecision> allowed = CompletableFuture.completedFuture(ALLOW);

        @Override
        public CompletableFuture<AuthDecision> authenticate(HandshakeRequest request) {
            return allowed;
        }

        @Override
        public String toString() {
            return "Authenticator.allowAll()";
        }
    };

    private final int status;
    private final List<Map.Entry<String, String>> headers;
    private final List<String> removedHeaders;
    private final Map<String, Object> attributes;

    private AuthDecision(int status, List<Map.Entry<String, String>> headers, List<String> removedHeaders,
            Map<String, Object> attributes) {
        this.status = status;
        this.headers = headers;
        this.removedHeaders = removedHeaders;
        this.attributes = attributes;
    }

    /**
     * Lets the request through to the backend.
     *
     * @return a decision that allows
     */
    public static AuthDecision allow() {
        return ALLOW;
    }

    /**
     * Refuses the request with {@code status}: the client gets it with a short plain-text body and
     * {@code Connection: close}; no backend is contacted.
     *
     * @param status a client or server error, 400 to 599, like {@code 401} or {@code 403}
     * @return a decision that refuses
     * @throws IllegalArgumentException if the status is not an error
     */
    public static AuthDecision reject(int status) {
        if (status < 400 || status > 599) {
            throw new IllegalArgumentException("status: " + status + " (expected: 400 to 599)");
        }
        return new AuthDecision(status, List.of(), List.of(), Map.of());
    }

    /**
     * Adds a header to the backend's request. Any header of that name the client sent is removed first, also when
     * spelled with {@code _} for {@code -} ({@code X_User_Id}, which CGI-style backends read as {@code X-User-Id}), so
     * a client cannot forge it; several calls with one name send several values.
     *
     * @param name a header name, not a reserved one: those the proxy sets or filters ({@code Host},
     *         {@code X-Forwarded-For}, {@code X-Forwarded-Proto}, {@code X-Forwarded-Host}, {@code X-Real-IP},
     *         {@code Forwarded}, {@code Content-Length}), those the WebSocket handshake writes itself or never sends
     *         ({@code Cache-Control}, {@code Pragma}, {@code Expect}: sent on plain HTTP only, they would differ
     *         between the two), hop-by-hop ones, {@code Proxy} and {@code Proxy-*} ones and {@code Sec-WebSocket-*}
     *         ones, also when spelled with {@code _} for {@code -}
     * @param value the value: visible ASCII, with spaces and tabs inside but not at either end. Encode anything else
     *         yourself, a user id with non-ASCII characters for instance, with percent-encoding or as RFC 8187 does
     *         ({@code UTF-8''caf%C3%A9}), and decode it in the backend: HTTP carries no other characters reliably
     *         (Jetty writes a space for each character above {@code 0xFF}, and the backend trims spaces at the ends, so
     *         {@code alice} followed by a CJK character would reach it as {@code alice})
     * @return a new decision
     * @throws IllegalStateException if this decision refuses
     * @throws IllegalArgumentException if the name is reserved or malformed, or the value has a character other than
     *         visible ASCII, space and tab, or a space or tab at either end
     */
    public AuthDecision withBackendHeader(String name, String value) {
        requireAllowed("withBackendHeader");
        checkBackendHeader(name, value);
        return new AuthDecision(status, append(Map.entry(name, value)), removedHeaders, attributes);
    }

    /**
     * Removes a header the client sent from the backend's request, like the {@code Authorization} that carried a
     * token the backend should not see (also when spelled with {@code _} for {@code -}).
     *
     * @param name a header name, not one the proxy sets, {@code Cache-Control}, {@code Pragma} or {@code Expect}, a
     *         hop-by-hop one, a {@code Proxy} or {@code Proxy-*} one or a {@code Sec-WebSocket-*} one, also when
     *         spelled with {@code _} for {@code -} (see {@link #withBackendHeader})
     * @return a new decision
     * @throws IllegalStateException if this decision refuses
     * @throws IllegalArgumentException if the name is reserved or malformed
     */
    public AuthDecision withoutBackendHeader(String name) {
        requireAllowed("withoutBackendHeader");
        checkBackendHeader(name, "");
        List<String> copy = new ArrayList<>(removedHeaders);
        copy.add(name);
        return new AuthDecision(status, headers, List.copyOf(copy), attributes);
    }

    /**
     * Attaches an attribute to the request, for the route's {@link BackendSelector}
     * ({@link HandshakeRequest#attribute(String)}) and, once the session is open, for listeners
     * ({@link ProxySession#attributes()}).
     *
     * @param name the attribute name
     * @param value its value
     * @return a new decision
     * @throws IllegalStateException if this decision refuses
     */
    public AuthDecision withAttribute(String name, Object value) {
        requireNonNull(name, "name");
        requireNonNull(value, "value");
        requireAllowed("withAttribute");
        Map<String, Object> copy = new LinkedHashMap<>(attributes);
        copy.put(name, value);
        return new AuthDecision(status, headers, removedHeaders, Map.copyOf(copy));
    }

    /**
     * Adds a header to the refusal the client gets, like {@code WWW-Authenticate} with a {@code 401}. The headers go
     * in the order they were added while they fit in the response head the client's connection can write (its
     * {@code maxResponseHeaderSize}, 16 KiB by default, less the proxy's own headers); one that does not fit is left
     * out, and the client still gets the refusal's status with the headers after it that fit.
     *
     * @param name a header name, not a framing or hop-by-hop one, nor {@code Content-Type},
     *        {@code Content-Encoding} (the refusal's body is the proxy's plain text) or a {@code Sec-WebSocket-*} one
     * @param value the value: visible ASCII, with spaces and tabs inside but not at either end, as for
     *        {@link #withBackendHeader}; encode anything else (percent-encoding, or as RFC 8187 does)
     * @return a new decision
     * @throws IllegalStateException if this decision allows
     * @throws IllegalArgumentException if the name is reserved or malformed, or the value has a character other than
     *         visible ASCII, space and tab, or a space or tab at either end
     */
    public AuthDecision withResponseHeader(String name, String value) {
        if (status == 0) {
            throw new IllegalStateException("withResponseHeader: only a rejection has response headers");
        }
        String lower = checkHeader(name, value);
        if (RESERVED_RESPONSE.contains(lower) || lower.startsWith("sec-websocket-")) {
            throw new IllegalArgumentException("name: " + name + " (expected: a header the proxy does not write itself)");
        }
        if (lower.equals("content-encoding")) {
            // A client that decodes the body as gzip (a browser, curl --compressed) failed on the proxy's text.
            throw new IllegalArgumentException("name: " + name + " (expected: no content coding; the refusal's body "
                    + "is the proxy's plain text)");
        }
        return new AuthDecision(status, append(Map.entry(name, value)), removedHeaders, attributes);
    }

    /**
     * Tells whether the request may go on.
     *
     * @return {@code true} for {@link #allow()}
     */
    public boolean isAllowed() {
        return status == 0;
    }

    /**
     * Returns the status of a refusal.
     *
     * @return the status, or 0 when the request is allowed
     */
    public int status() {
        return status;
    }

    /**
     * Returns the headers added: for the backend when allowed, for the client when refused.
     *
     * @return name and value pairs, in the order they were added
     */
    public List<Map.Entry<String, String>> headers() {
        return headers;
    }

    /**
     * Returns the client headers removed from the backend's request with {@link #withoutBackendHeader(String)}.
     *
     * @return the names, in the order they were given
     */
    public List<String> removedHeaders() {
        return removedHeaders;
    }

    /**
     * Returns the attributes attached.
     *
     * @return an unmodifiable map
     */
    public Map<String, Object> attributes() {
        return attributes;
    }

    private void requireAllowed(String method) {
        if (status != 0) {
            throw new IllegalStateException(method + ": only an allowing decision reaches a backend");
        }
    }

    private List<Map.Entry<String, String>> append(Map.Entry<String, String> header) {
        List<Map.Entry<String, String>> copy = new ArrayList<>(headers);
        copy.add(header);
        return List.copyOf(copy);
    }

    /**
     * Checks a header for the backend's request, its name read with {@code _} as {@code -}: the proxy removes the
     * client's headers spelled either way before it adds an authenticator's, so {@code X_Real_IP} would have replaced
     * the proxy's own {@code X-Real-IP}, and {@code withoutBackendHeader("X_Forwarded_For")} removed its
     * {@code X-Forwarded-For}.
     */
    private static void checkBackendHeader(String name, String value) {
        String canonical = checkHeader(name, value).replace('_', '-');
        if (RESERVED_BACKEND.contains(canonical) || canonical.startsWith("proxy-")
                || canonical.startsWith("sec-websocket-")) {
            throw new IllegalArgumentException("name: " + name + " (expected: a header the proxy does not set itself)");
        }
        if (RESERVED_HANDSHAKE.contains(canonical)) {
            throw new IllegalArgumentException("name: " + name + " (expected: a header the proxy does not set itself;"
                    + " the WebSocket handshake writes its own Cache-Control and Pragma and sends no Expect)");
        }
    }

    private static String checkHeader(String name, String value) {
        requireNonNull(name, "name");
        requireNonNull(value, "value");
        if (!HttpTokens.isToken(name)) {
            throw new IllegalArgumentException("name: '" + name + "' (expected: an HTTP header name)");
        }
        checkValue(name, value);
        return name.toLowerCase(Locale.ROOT);
    }

    /**
     * Refuses a value that would not reach the peer as given. HTTP carries visible ASCII, spaces and tabs reliably; a
     * control character would end the header early (header injection), and a character above {@code 0x7E} is either
     * not a byte at all or read by each server its own way: Jetty writes a space for each character above
     * {@code 0xFF}, in its generator (plain HTTP, refusals) and in {@code BackendHandshake}'s copy of it, so
     * {@code alice} followed by a CJK character went as {@code "alice "}, which the backend's parser trims to
     * {@code alice}, another user. Leading and trailing spaces and tabs are trimmed by every parser (RFC 9110 section
     * 5.5), so {@code "alice "} would pass for {@code alice} too. The value is not in the message: it may be a
     * credential.
     */
    private static void checkValue(String name, String value) {
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if ((c < 0x20 && c != '\t') || c > 0x7e) {
                throw new IllegalArgumentException("value of " + name + ": U+"
                        + String.format(Locale.ROOT, "%04X", (int) c) + " at index " + i
                        + " (expected: visible ASCII, spaces and tabs; encode other text, with percent-encoding or as"
                        + " RFC 8187 does)");
            }
        }
        if (!value.isEmpty() && (isBlank(value.charAt(0)) || isBlank(value.charAt(value.length() - 1)))) {
            throw new IllegalArgumentException("value of " + name
                    + " (expected: no space or tab at either end, which the receiving parser strips)");
        }
    }

    private static boolean isBlank(char c) {
        return c == ' ' || c == '\t';
    }

    @Override
    public String toString() {
        return status == 0 ? "allow" + headerNames() + attributes.keySet() : "reject(" + status + ")" + headerNames();
    }

    private List<String> headerNames() {
        // Names only: values may be credentials.
        return headers.stream().map(Map.Entry::getKey).toList();
    }
}
