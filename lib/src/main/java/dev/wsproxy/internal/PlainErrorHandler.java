package dev.wsproxy.internal;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

import org.eclipse.jetty.http.HttpException;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.http.HttpURI;
import org.eclipse.jetty.http.MimeTypes;
import org.eclipse.jetty.http.UriCompliance;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.handler.ErrorHandler;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.NanoTime;
import org.jspecify.annotations.Nullable;

/**
 * The standalone server's error handler. Its pages are the status and its reason phrase in plain text, whatever the
 * error was: Jetty's default page is HTML with the failure's message in it (for requests its parser refuses, like a
 * duplicate {@code Host} or oversized headers); a proxy's answers carry no detail of a failure.
 *
 * <p>It also writes the access line ({@link AccessLog#unrouted}) of each request that the proxy's route handling
 * never took, which nothing else would log (the standalone server has no {@code RequestLog}): those Jetty refuses
 * before any handler runs, and those no handler took. Jetty (12.1) sends every one of them here with the request it
 * has: its parser's refusals ({@code HttpConnection}'s {@code badMessage}: a bad, missing or repeated {@code Host},
 * headers or a target too large, a malformed request line, for which it makes a request {@code BAD /badMessage}) fail
 * the request before it is handled; its URI compliance and the TLS customizer's {@code Invalid SNI} are thrown by
 * {@code HttpChannelState}'s handler invoker before it calls the server's handler; and that invoker answers
 * {@code 404} when the handler did not take the request. The refusals come with an {@code HttpException} that holds
 * the status, the {@code 404} with none. Every other error page of the server comes here too: a request the proxy
 * handled on a route (which it logs itself, and which ends here when its response fails before it is committed) and
 * one the next handler took (the user's to log) are told apart by what they carry
 * ({@link WebSocketProxyHandler#tookRequest}). A connection that its client ends in the middle of its request head
 * (a reset or a half-close, Jetty's "Early EOF") gets {@code 400 incomplete_head}, as from nginx, with the method if
 * its request line was complete; one the handshake deadline closed in the middle of its head has its {@code 408}
 * from {@link HandshakeGuard} instead (the guard marks its connection, {@link HandshakeGuard#EXPIRED}), and one that
 * sent no byte reaches no error page. Nothing of this runs for a request that gets no error page, so the proxy's hot
 * paths pay nothing for it.
 */
public final class PlainErrorHandler extends ErrorHandler {

    /** The method and path Jetty gives a request whose request line it could not read. */
    private static final String UNREAD_METHOD = "BAD";
    private static final String UNREAD_PATH = "/badMessage";
    /** What Jetty's parser fails a request head with when its connection ends before the head does. */
    private static final String EARLY_EOF = "Early EOF";

    private final WebSocketProxyHandler proxy;

    public PlainErrorHandler(WebSocketProxyHandler proxy) {
        this.proxy = proxy;
    }

    @Override
    public boolean handle(Request request, Response response, Callback callback) throws Exception {
        Throwable cause = (Throwable) request.getAttribute(ERROR_EXCEPTION);
        int status = cause instanceof HttpException refusal ? refusal.getCode() : response.getStatus();
        if (!proxy.tookRequest(request)) {
            String reason = reason(request, status, cause);
            if (reason != null) {
                String method = request.getMethod();
                boolean unread = UNREAD_METHOD.equals(method) && UNREAD_PATH.equals(request.getHttpURI().getPath());
                AccessLog.unrouted(proxy.clientAddress(request), NanoTime.millisSince(request.getBeginNanoTime()),
                        unread ? null : method, status, reason);
            }
        }
        return super.handle(request, response, callback);
    }

    /**
     * The access log's token for a request no handler took, from what Jetty failed it with: {@code null} when it is
     * no answer of Jetty's to the request, or the handshake deadline's close (whose line {@link HandshakeGuard}
     * writes).
     */
    static @Nullable String reason(Request request, int status, @Nullable Throwable cause) {
        if (!(cause instanceof HttpException refusal)) {
            // Jetty's own 404, when no handler took the request (HttpChannelState's handler invoker).
            return cause == null && status == HttpStatus.NOT_FOUND_404 ? "no_route" : null;
        }
        String message = refusal.getReason();
        if (EARLY_EOF.equals(message)) {
            // The client ended its connection (a reset, a half-close or a close) in the middle of its request head; or
            // the handshake deadline closed it, and a read racing the close saw its end: HandshakeGuard logs that one.
            return request.getConnectionMetaData().getAttribute(HandshakeGuard.EXPIRED) == null
                    ? "incomplete_head" : null;
        }
        if (status == HttpStatus.REQUEST_HEADER_FIELDS_TOO_LARGE_431) {
            return "headers_too_large";
        }
        if (status == HttpStatus.URI_TOO_LONG_414) {
            return "uri_too_long";
        }
        if ("Invalid SNI".equals(message)) {
            return "invalid_sni";
        }
        if (message != null && message.contains("Host")) {
            // The parser's "No Host", "Bad HostPort", "Duplicate Host Header", or its HttpCompliance's.
            return "bad_host";
        }
        if (refusedUri(request)) {
            return "bad_uri";
        }
        return "bad_request";
    }

    /**
     * Whether the request's target is one Jetty refuses once it has read the request: a path that does not start
     * with {@code /} (Jetty's "Bad URI path"), or a violation that the connector's URI compliance refuses.
     */
    private static boolean refusedUri(Request request) {
        HttpURI uri = request.getHttpURI();
        if (uri == null) {
            return false;
        }
        String path = uri.getPath();
        if (path != null && !path.startsWith("/")) {
            return true;
        }
        if (!uri.hasViolations()) {
            return false;
        }
        UriCompliance compliance = request.getConnectionMetaData().getHttpConfiguration().getUriCompliance();
        return uri.getViolations().stream().anyMatch(violation -> !compliance.allows(violation));
    }

    @Override
    protected void generateResponse(Request request, Response response, int code, String message, Throwable cause,
            Callback callback) {
        byte[] body = (code + " " + HttpStatus.getMessage(code) + "\n").getBytes(StandardCharsets.UTF_8);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, MimeTypes.Type.TEXT_PLAIN_UTF_8.asString());
        response.getHeaders().put(HttpHeader.CONTENT_LENGTH, body.length);
        response.write(true, ByteBuffer.wrap(body), callback);
    }
}
