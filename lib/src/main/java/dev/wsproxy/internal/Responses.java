package dev.wsproxy.internal;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Set;

import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpHeaderValue;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.http.MimeTypes;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;
import org.jspecify.annotations.Nullable;

/**
 * Writes the proxy's answers to upgrade requests it does not upgrade. Every such answer closes the connection, so
 * that bytes a client pipelined after its handshake are never read as another request.
 */
final class Responses {

    /** Seconds a client is asked to wait with {@code 503}. */
    static final String RETRY_AFTER_SECONDS = "5";

    /** The methods a route with plain HTTP forwards, as its {@code 405} lists them (all but CONNECT and TRACE). */
    static final String ALLOWED_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

    /** Besides the hop-by-hop ones, the headers of a backend's refusal the proxy writes its own of. */
    private static final Set<String> NOT_RELAYED = Set.of("content-length", "date", "server");

    private Responses() {
    }

    /** Writes {@code status} with a short plain-text body that carries no detail of the failure. */
    static void error(Response response, Callback callback, int status) {
        HttpFields.Mutable headers = response.getHeaders();
        if (status == HttpStatus.UPGRADE_REQUIRED_426) {
            headers.put(HttpHeader.SEC_WEBSOCKET_VERSION, "13");
        } else if (status == HttpStatus.SERVICE_UNAVAILABLE_503 && !headers.contains(HttpHeader.RETRY_AFTER)) {
            headers.put(HttpHeader.RETRY_AFTER, RETRY_AFTER_SECONDS);
        } else if (status == HttpStatus.TOO_MANY_REQUESTS_429 && !headers.contains(HttpHeader.RETRY_AFTER)) {
            // An authenticator's own Retry-After wins.
            headers.put(HttpHeader.RETRY_AFTER, "1");
        } else if (status == HttpStatus.METHOD_NOT_ALLOWED_405) {
            // RFC 9110 section 15.5.6: a 405 lists what the target allows; a route forwards any other method.
            headers.put(HttpHeader.ALLOW, ALLOWED_METHODS);
        }
        String reason = HttpStatus.getMessage(status);
        write(response, callback, status, null, ByteBuffer.wrap((status + " " + reason + "\n")
                .getBytes(StandardCharsets.UTF_8)), MimeTypes.Type.TEXT_PLAIN_UTF_8.asString());
    }

    /** Relays a backend's refusal: its status, the headers a client may see, and its (capped) body. */
    static void relay(Response response, Callback callback, int status, HttpFields backendHeaders, ByteBuffer body) {
        write(response, callback, status, backendHeaders, body, null);
    }

    private static void write(Response response, Callback callback, int status, @Nullable HttpFields copied,
            ByteBuffer body, @Nullable String contentType) {
        response.setStatus(status);
        HttpFields.Mutable headers = response.getHeaders();
        if (copied != null) {
            Set<String> named = ForwardedHeaders.connectionTokens(copied);
            for (HttpField field : copied) {
                if (isRelayable(ForwardedHeaders.canonical(field.getLowerCaseName()), named)) {
                    headers.add(field);
                }
            }
        }
        if (contentType != null) {
            headers.put(HttpHeader.CONTENT_TYPE, contentType);
        }
        headers.put(HttpHeader.CONNECTION, HttpHeaderValue.CLOSE.asString());
        headers.put(HttpHeader.CONTENT_LENGTH, body.remaining());
        response.write(true, body, callback);
    }

    /**
     * A backend's refusal passes its end-to-end headers ({@link ForwardedHeaders#isEndToEnd}) but for its framing,
     * its {@code Date} and {@code Server}, which the proxy's response has its own of, and the handshake's.
     */
    private static boolean isRelayable(String canonicalName, Set<String> named) {
        return ForwardedHeaders.isEndToEnd(canonicalName, named) && !NOT_RELAYED.contains(canonicalName)
                && !canonicalName.startsWith("sec-websocket-");
    }
}
