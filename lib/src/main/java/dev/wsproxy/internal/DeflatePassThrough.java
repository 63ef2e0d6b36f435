package dev.wsproxy.internal;

import java.net.URI;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.websocket.core.Behavior;
import org.eclipse.jetty.websocket.core.ExtensionStack;
import org.eclipse.jetty.websocket.core.WebSocketComponents;
import org.eclipse.jetty.websocket.core.exception.UpgradeException;
import org.jspecify.annotations.Nullable;

/**
 * {@code permessage-deflate} (RFC 7692) passed through, when a route turns it on: the proxy lets the client and the
 * backend agree on it and relays their compressed frames as they are, without ever inflating or deflating.
 *
 * <h2>Handshake</h2>
 * The backend is offered the client's {@code permessage-deflate} elements only, in the client's order, each checked as
 * RFC 7692 section 7 says a server checks an offer: parameters among {@code server_no_context_takeover},
 * {@code client_no_context_takeover} (no value), {@code server_max_window_bits} (8 to 15) and
 * {@code client_max_window_bits} (no value, or 8 to 15), each at most once. An element that breaks a rule is dropped,
 * as a server declines what it does not understand, not refused; other extensions are never offered. They are
 * forwarded rewritten in one form ({@code permessage-deflate; client_max_window_bits=10}), with the same meaning.
 * The backend's {@code 101} must then carry no extension, or exactly one {@code permessage-deflate} element that one
 * of those offers allows (section 7.1): valid parameters, each once; {@code client_max_window_bits}, with a value,
 * only if that offer had it, and no larger than its value; {@code server_max_window_bits} no larger than that offer's,
 * and present, when it had one; {@code server_no_context_takeover} when that offer had it. Anything else is an invalid
 * {@code 101} ({@code 502}); one well-formed element that no offer allows ({@link #UNMATCHED}) is not held against the
 * backend, since a client's offer can bring it about. The client's {@code 101} carries the element the backend
 * accepted.
 *
 * <h2>Frames</h2>
 * Jetty's sessions refuse a data frame with RSV1 set unless an extension of theirs claims RSV1: each leg of a session
 * whose backend accepted gets an {@link ExtensionStack} that says RSV1 is used ({@link #negotiated}) while holding no
 * extension, so frames still go straight from the parser to the relay and from the relay to the generator, which
 * writes RSV1 as the frame has it. Control frames with RSV1 are still refused by Jetty; RSV1 on a continuation frame
 * is refused by the relay. The relay checks the UTF-8 of text messages that are not compressed only.
 */
final class DeflatePassThrough {

    static final String NAME = "permessage-deflate";

    private static final String SERVER_NO_CONTEXT_TAKEOVER = "server_no_context_takeover";
    private static final String CLIENT_NO_CONTEXT_TAKEOVER = "client_no_context_takeover";
    private static final String SERVER_MAX_WINDOW_BITS = "server_max_window_bits";
    private static final String CLIENT_MAX_WINDOW_BITS = "client_max_window_bits";

    private DeflatePassThrough() {
    }

    /** The valid {@code permessage-deflate} elements of the client's offers, in its order, rewritten in one form. */
    static List<String> offers(HttpFields request) {
        List<String> offers = new ArrayList<>(1);
        for (String value : request.getValuesList(HttpHeader.SEC_WEBSOCKET_EXTENSIONS)) {
            for (String element : elements(value)) {
                Map<String, @Nullable String> params = parse(element);
                if (params != null && validOffer(params)) {
                    offers.add(format(params));
                }
            }
        }
        return offers;
    }

    /**
     * Checks the backend's {@code Sec-WebSocket-Extensions} against the offers the proxy sent ({@code request}, written
     * by {@link #offers}): {@code null} when it is valid, otherwise why not.
     */
    static @Nullable String invalidAnswer(HttpFields answer, HttpFields request) {
        List<String> accepted = new ArrayList<>(1);
        for (String value : answer.getValuesList(HttpHeader.SEC_WEBSOCKET_EXTENSIONS)) {
            accepted.addAll(elements(value));
        }
        if (accepted.isEmpty()) {
            return null;
        }
        List<String> offered = request.getValuesList(HttpHeader.SEC_WEBSOCKET_EXTENSIONS);
        if (offered.isEmpty()) {
            return "Sec-WebSocket-Extensions contained extension not requested";
        }
        if (accepted.size() > 1) {
            return "Sec-WebSocket-Extensions with more than one extension";
        }
        String element = accepted.get(0);
        Map<String, @Nullable String> params = parse(element);
        if (params == null) {
            int end = element.indexOf(';');
            return (end < 0 ? element : element.substring(0, end)).trim().equalsIgnoreCase(NAME)
                    ? "Sec-WebSocket-Extensions with a malformed permessage-deflate element"
                    : "Sec-WebSocket-Extensions contained extension not requested";
        }
        if (!validAnswer(params)) {
            return "Sec-WebSocket-Extensions accepted permessage-deflate with parameters RFC 7692 does not allow";
        }
        for (String value : offered) {
            for (String offer : elements(value)) {
                Map<String, @Nullable String> offerParams = parse(offer);
                if (offerParams != null && allows(offerParams, params)) {
                    return null;
                }
            }
        }
        return UNMATCHED;
    }

    /**
     * Why a backend's {@code 101} is invalid ({@link #invalidAnswer}) when it accepted one well-formed
     * {@code permessage-deflate} element that none of the client's offers allows: a window or a context takeover
     * other than an offer asked for. That depends on the client's offers as much as on the backend: servers that
     * ignore an offer's {@code server_max_window_bits} (Jetty's, gorilla's) answer one that asks for it so, and any
     * client can ask. So it is a {@code 502} for that client, not a failure of the backend ({@link Unmatched}).
     */
    static final String UNMATCHED = "Sec-WebSocket-Extensions accepted permessage-deflate on terms none of the "
            + "client's offers allows (RFC 7692 section 7.1)";

    /**
     * A backend's {@code 101} invalid for {@link #UNMATCHED}: the backend is up and answered, as a backend that
     * refuses does, so the proxy neither counts it against the backend's health nor tries another backend.
     */
    static final class Unmatched extends UpgradeException {

        private static final long serialVersionUID = 1L;

        Unmatched(URI uri) {
            super(uri, HttpStatus.SWITCHING_PROTOCOLS_101, UNMATCHED);
        }
    }

    /** The element a valid answer ({@link #invalidAnswer}) accepted, rewritten in one form; {@code null} for none. */
    static @Nullable String accepted(HttpFields answer) {
        for (String value : answer.getValuesList(HttpHeader.SEC_WEBSOCKET_EXTENSIONS)) {
            for (String element : elements(value)) {
                Map<String, @Nullable String> params = parse(element);
                return params == null ? null : format(params);
            }
        }
        return null;
    }

    /**
     * The extension stack of a leg: no extension, and RSV1 allowed on data frames when {@code deflate} was agreed, so
     * that Jetty's frame checks let the peers' compressed frames through without a codec in the way.
     */
    static ExtensionStack negotiated(WebSocketComponents components, Behavior behavior, boolean deflate) {
        ExtensionStack stack = deflate ? new ExtensionStack(components, behavior) {
            @Override
            public boolean isRsv1Used() {
                return true;
            }
        } : new ExtensionStack(components, behavior);
        stack.negotiate(List.of(), List.of());
        return stack;
    }

    /** The comma-separated elements of a header value, commas inside quoted strings kept; empty ones left out. */
    static List<String> elements(String value) {
        List<String> elements = new ArrayList<>(1);
        boolean quoted = false;
        int start = 0;
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (quoted && c == '\\') {
                i++;
            } else if (c == '"') {
                quoted = !quoted;
            } else if (c == ',' && !quoted) {
                add(elements, value.substring(start, i));
                start = i + 1;
            }
        }
        add(elements, value.substring(start));
        return elements;
    }

    private static void add(List<String> elements, String element) {
        String trimmed = element.trim();
        if (!trimmed.isEmpty()) {
            elements.add(trimmed);
        }
    }

    /**
     * The parameters of a {@code permessage-deflate} element, names in lower case, values unquoted ({@code null} when
     * a parameter has none); {@code null} for another extension or a malformed element (an empty or repeated
     * parameter, a name or value that is not a token or a quoted token).
     */
    static @Nullable Map<String, @Nullable String> parse(String element) {
        String[] parts = element.split(";", -1);
        if (!parts[0].trim().equalsIgnoreCase(NAME)) {
            return null;
        }
        Map<String, @Nullable String> params = new LinkedHashMap<>();
        for (int i = 1; i < parts.length; i++) {
            String part = parts[i];
            int equals = part.indexOf('=');
            String name = (equals < 0 ? part : part.substring(0, equals)).trim().toLowerCase(Locale.ROOT);
            String value = equals < 0 ? null : part.substring(equals + 1).trim();
            if (value != null && value.length() >= 2 && value.startsWith("\"") && value.endsWith("\"")) {
                value = value.substring(1, value.length() - 1);
            }
            if (!isToken(name) || (value != null && !isToken(value)) || params.containsKey(name)) {
                return null;
            }
            params.put(name, value);
        }
        return params;
    }

    /** An offer's parameters as RFC 7692 section 7 allows them. */
    private static boolean validOffer(Map<String, @Nullable String> params) {
        for (Map.Entry<String, @Nullable String> param : params.entrySet()) {
            String value = param.getValue();
            boolean valid = switch (param.getKey()) {
                case SERVER_NO_CONTEXT_TAKEOVER, CLIENT_NO_CONTEXT_TAKEOVER -> value == null;
                case SERVER_MAX_WINDOW_BITS -> windowBits(value) > 0;
                case CLIENT_MAX_WINDOW_BITS -> value == null || windowBits(value) > 0;
                default -> false;
            };
            if (!valid) {
                return false;
            }
        }
        return true;
    }

    /** A response's parameters as RFC 7692 section 7 allows them, whatever the offer: windows with a value. */
    private static boolean validAnswer(Map<String, @Nullable String> params) {
        for (Map.Entry<String, @Nullable String> param : params.entrySet()) {
            String value = param.getValue();
            boolean valid = switch (param.getKey()) {
                case SERVER_NO_CONTEXT_TAKEOVER, CLIENT_NO_CONTEXT_TAKEOVER -> value == null;
                case SERVER_MAX_WINDOW_BITS, CLIENT_MAX_WINDOW_BITS -> windowBits(value) > 0;
                default -> false;
            };
            if (!valid) {
                return false;
            }
        }
        return true;
    }

    /**
     * Whether a response with {@code accepted}'s parameters, valid ones ({@link #validAnswer}), accepts {@code offer}
     * (RFC 7692 section 7.1).
     */
    private static boolean allows(Map<String, @Nullable String> offer, Map<String, @Nullable String> accepted) {
        // A client's window only when the offer said the client can limit it (7.1.2.2).
        if (accepted.containsKey(CLIENT_MAX_WINDOW_BITS) && !offer.containsKey(CLIENT_MAX_WINDOW_BITS)) {
            return false;
        }
        // An offer that asks the server to reset its context is accepted only by an answer that says it will (7.1.1.1).
        if (offer.containsKey(SERVER_NO_CONTEXT_TAKEOVER) && !accepted.containsKey(SERVER_NO_CONTEXT_TAKEOVER)) {
            return false;
        }
        // A client's window the offer limited stays within that limit (7.1.2.2): the client would refuse a larger one.
        String offeredClientBits = offer.get(CLIENT_MAX_WINDOW_BITS);
        if (offeredClientBits != null && accepted.containsKey(CLIENT_MAX_WINDOW_BITS)
                && windowBits(accepted.get(CLIENT_MAX_WINDOW_BITS)) > windowBits(offeredClientBits)) {
            return false;
        }
        // An offer that limits the server's window is accepted only with that limit or a smaller one (7.1.2.1).
        String offeredServerBits = offer.get(SERVER_MAX_WINDOW_BITS);
        return offeredServerBits == null
                || windowBits(accepted.get(SERVER_MAX_WINDOW_BITS)) <= windowBits(offeredServerBits)
                        && accepted.containsKey(SERVER_MAX_WINDOW_BITS);
    }

    /** A window size parameter's value, 8 to 15 without leading zeros; -1 for anything else. */
    private static int windowBits(@Nullable String value) {
        if (value == null) {
            return -1;
        }
        return switch (value) {
            case "8", "9", "10", "11", "12", "13", "14", "15" -> Integer.parseInt(value);
            default -> -1;
        };
    }

    private static String format(Map<String, @Nullable String> params) {
        StringBuilder element = new StringBuilder(NAME);
        params.forEach((name, value) -> {
            element.append("; ").append(name);
            if (value != null) {
                element.append('=').append(value);
            }
        });
        return element.toString();
    }

    /** An RFC 7230 token: one or more visible ASCII characters but separators. */
    private static boolean isToken(String text) {
        if (text.isEmpty()) {
            return false;
        }
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c <= ' ' || c >= 0x7F || "()<>@,;:\\\"/[]?={}".indexOf(c) >= 0) {
                return false;
            }
        }
        return true;
    }
}
