package dev.wsproxy.internal;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpHeaderValue;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.http.MimeTypes;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.util.Callback;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes the proxy's answers to upgrade requests it does not upgrade. Every such answer closes the connection, so
 * that bytes a client pipelined after its handshake are never read as another request.
 */
final class Responses {

    private static final Logger LOG = LoggerFactory.getLogger(Responses.class);

    /** Seconds a client is asked to wait with {@code 503}. */
    static final String RETRY_AFTER_SECONDS = "5";

    /** The methods a route with plain HTTP forwards, as its {@code 405} lists them (all but CONNECT and TRACE). */
    static final String ALLOWED_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

    /** Besides the hop-by-hop ones, the headers of a backend's refusal the proxy writes its own of. */
    private static final Set<String> NOT_RELAYED = Set.of("content-length", "date", "server");

    /**
     * The digests of a body or of its representation, which a refusal body the proxy cuts no longer matches (see
     * {@link #relay}): {@code Content-Digest} and {@code Repr-Digest} (RFC 9530), and those RFC 9530 and RFC 7231
     * made obsolete, {@code Digest} (RFC 3230) and {@code Content-MD5} (RFC 1864).
     */
    private static final List<String> DIGESTS = List.of("Content-Digest", "Repr-Digest", "Digest", "Content-MD5");

    /**
     * Bytes of a response head kept for what the proxy writes besides the response's headers so far: the status line,
     * {@code Connection}, {@code Content-Length} and the blank line (about 90 bytes), and for one of its own refusals
     * {@code Content-Type} and the status's own header ({@code Allow}, the longest, 53 bytes): at most 170, with
     * margin.
     */
    private static final int OWN_HEAD_BYTES = 256;

    private Responses() {
    }

    /**
     * Writes {@code status} with a short plain-text body, after {@code added} headers (an authenticator's): in their
     * order while they fit in the head the client's connection can write (see {@link #headRoom}), as
     * {@link #relay} does with a backend's. An authenticator's header of 20,000 bytes overflowed Jetty's generator,
     * and the client got Jetty's {@code 500} while listeners had been told of the authenticator's status.
     */
    static void error(Response response, Callback callback, int status, List<Map.Entry<String, String>> added) {
        if (!added.isEmpty()) {
            HttpFields.Mutable headers = response.getHeaders();
            int room = headRoom(response);
            for (Map.Entry<String, String> header : added) {
                room = addIfItFits(headers, new HttpField(header.getKey(), header.getValue()), room, "a refusal");
            }
        }
        error(response, callback, status);
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

    /**
     * Relays a backend's refusal: its status, the headers a client may see, and its (capped) body. The headers go in
     * the backend's order while they fit in the head the client's connection can write (see {@link #headRoom}); one
     * that does not fit is dropped, and a smaller one after it still goes. The backend's head may be up to
     * {@link BackendHandshake#MAX_RESPONSE_HEAD}, four times what Jetty writes by default: copied whole, it made
     * Jetty's generator overflow, and the response, not committed yet, became Jetty's {@code 500} error page, while
     * listeners had been told of the backend's status. Dropping what does not fit keeps the status, the body and the
     * headers that matter most to a client ({@code WWW-Authenticate}, {@code Retry-After}, {@code Content-Type}),
     * which are short.
     *
     * <p>A body that is not {@code whole} (past the cap the proxy reads, or cut by the backend's end of file or a
     * fault) is relayed as far as it came, unless it has a content coding ({@code Content-Encoding} other than
     * {@code identity}): the first bytes of a gzip body are no gzip body, and a client that decodes it fails. That
     * refusal goes with its status and other headers, and without its body and {@code Content-Encoding}. Either way
     * it goes without the backend's digests ({@link #DIGESTS}), which a client that checks them would find wrong:
     * {@code Content-Digest} (and {@code Content-MD5}) is the digest of the content, which the proxy cut or dropped;
     * {@code Repr-Digest} (and {@code Digest}) is that of the selected representation, content coding included
     * (RFC 9530 section 3), and in a response that is not partial ({@code 206} with {@code Content-Range}) the
     * representation is the content the client gets: cut, or empty and without the coding the digest was taken
     * with. Kept, they no longer described what the client got, and a client that checks them took the cut for a
     * corruption; the proxy cannot recompute a digest of what it did not read. A whole body keeps them all.
     */
    static void relay(Response response, Callback callback, int status, HttpFields backendHeaders, ByteBuffer body,
            boolean whole) {
        if (whole) {
            write(response, callback, status, backendHeaders, body, null);
            return;
        }
        HttpFields.Mutable cut = HttpFields.build(backendHeaders);
        for (String digest : DIGESTS) {
            cut.remove(digest);
        }
        if (isEncoded(backendHeaders)) {
            cut.remove(HttpHeader.CONTENT_ENCODING);
            write(response, callback, status, cut, BufferUtil.EMPTY_BUFFER, null);
            return;
        }
        write(response, callback, status, cut, body, null);
    }

    /** Whether {@code headers} give the body a content coding, {@code identity} (none) aside. */
    private static boolean isEncoded(HttpFields headers) {
        for (String coding : headers.getCSV(HttpHeader.CONTENT_ENCODING, false)) {
            if (!coding.isEmpty() && !coding.equalsIgnoreCase("identity")) {
                return true;
            }
        }
        return false;
    }

    private static void write(Response response, Callback callback, int status, @Nullable HttpFields copied,
            ByteBuffer body, @Nullable String contentType) {
        response.setStatus(status);
        HttpFields.Mutable headers = response.getHeaders();
        if (copied != null) {
            Set<String> named = ForwardedHeaders.connectionTokens(copied);
            int room = headRoom(response);
            for (HttpField field : copied) {
                if (!isRelayable(ForwardedHeaders.canonical(field.getLowerCaseName()), named)) {
                    continue;
                }
                room = addIfItFits(headers, field, room, "a relayed refusal");
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
     * Adds {@code field} when it fits in {@code room} bytes of the response head, and returns the bytes left; drops
     * it otherwise (DEBUG, its name and size, not its value), so that a smaller header after it still goes.
     */
    static int addIfItFits(HttpFields.Mutable headers, HttpField field, int room, String of) {
        int size = size(field);
        if (size > room) {
            if (LOG.isDebugEnabled()) {
                LOG.debug("Header {} of {} dropped: {} bytes, {} left of the client's head", field.getName(), of, size,
                        Math.max(0, room));
            }
            return room;
        }
        headers.add(field);
        return room - size;
    }

    /**
     * Bytes left for added headers in the response head the client's connection can write: Jetty's HTTP/1.1
     * generator fails a head larger than the connection's {@code maxResponseHeaderSize} (16 KiB by default), or than
     * its {@code responseHeaderSize} (8 KiB by default) when that maximum is not positive; less the headers the
     * response has already (Jetty's {@code Server} and {@code Date}, a customizer's) and {@link #OWN_HEAD_BYTES}.
     */
    static int headRoom(Response response) {
        HttpConfiguration configuration = response.getRequest().getConnectionMetaData().getHttpConfiguration();
        int limit = configuration.getMaxResponseHeaderSize() > 0 ? configuration.getMaxResponseHeaderSize()
                : configuration.getResponseHeaderSize();
        int room = limit - OWN_HEAD_BYTES;
        for (HttpField field : response.getHeaders()) {
            room -= size(field);
        }
        return room;
    }

    /** The bytes of {@code field} in a response head, {@code name: value} and CRLF, as Jetty's generator writes it. */
    static int size(HttpField field) {
        String value = field.getValue();
        return field.getName().length() + (value == null ? 0 : value.length()) + 4;
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
