package dev.wsproxy.internal;

import java.net.URI;
import java.util.List;

import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.http.HttpURI;
import org.eclipse.jetty.http.PreEncodedHttpField;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.server.ConnectionMetaData;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Context;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpStream;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.TunnelSupport;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.websocket.core.Behavior;
import org.eclipse.jetty.websocket.core.Configuration;
import org.eclipse.jetty.websocket.core.ExtensionStack;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.Negotiated;
import org.eclipse.jetty.websocket.core.WebSocketComponents;
import org.eclipse.jetty.websocket.core.WebSocketConnection;
import org.eclipse.jetty.websocket.core.WebSocketConstants;
import org.eclipse.jetty.websocket.core.WebSocketCoreSession;
import org.eclipse.jetty.websocket.core.util.WebSocketUtils;
import org.jspecify.annotations.Nullable;

/**
 * Upgrades the client once the backend accepted: what Jetty's RFC 6455 handshaker ({@code Handshaker.upgradeRequest})
 * does, for a request {@link UpgradeChecks} validated already and a subprotocol the backend chose among the client's
 * offers ({@link BackendHandshake} checked it), as {@link BackendHandshake} does for the backend leg. It leaves out
 * what the proxy has decided by then: Jetty's negotiation (which parses the subprotocol and extension offers again and
 * validates the request again), the extension negotiation (the proxy accepts none, or relays the backend's {@code
 * permessage-deflate} answer, see {@link DeflatePassThrough}), and the request URI parsed twice (as an {@code http}
 * URI, then as a {@code ws} one). In a storm of handshakes those were a third of the client upgrade's cost beside
 * Jetty's response path.
 *
 * <p>The session, the connection and the {@code 101} are Jetty's handshaker's: the session runs its handler's calls in
 * the request's context, the connection takes the connector's executor, scheduler, buffer pool, direct-buffer settings
 * and listeners, and the response carries {@code Upgrade}, {@code Connection}, {@code Sec-WebSocket-Accept} and the
 * subprotocol, with no {@code Sec-WebSocket-Extensions} but the backend's accepted {@code permessage-deflate} element
 * when the route passes compression through. Jetty's HTTP connection switches to the WebSocket connection once the
 * {@code 101} is written, and {@code callback} then completes.
 */
final class ClientUpgrade {

    private static final HttpField UPGRADE_WEBSOCKET = new PreEncodedHttpField(HttpHeader.UPGRADE, "websocket");
    private static final HttpField CONNECTION_UPGRADE = new PreEncodedHttpField(HttpHeader.CONNECTION, "Upgrade");

    private ClientUpgrade() {
    }

    /** Writes the {@code 101} and makes {@code handler}'s session the connection's once it is written. */
    static void upgrade(Request request, Response response, Callback callback, FrameHandler handler,
            @Nullable String subprotocol, @Nullable String extension, WebSocketComponents components,
            Configuration.Customizer configuration) {
        String key = request.getHeaders().get(HttpHeader.SEC_WEBSOCKET_KEY);
        if (key == null) {
            throw new IllegalStateException("upgrade request without Sec-WebSocket-Key");
        }
        WebSocketConnection connection = newConnection(request, request.getConnectionMetaData().getConnection()
                .getEndPoint(), handler, subprotocol, extension != null, components, configuration);

        response.setStatus(HttpStatus.SWITCHING_PROTOCOLS_101);
        HttpFields.Mutable headers = response.getHeaders();
        headers.put(UPGRADE_WEBSOCKET);
        headers.put(CONNECTION_UPGRADE);
        headers.put(HttpHeader.SEC_WEBSOCKET_ACCEPT, WebSocketUtils.hashKey(key.trim()));
        if (subprotocol != null) {
            headers.put(HttpHeader.SEC_WEBSOCKET_SUBPROTOCOL, subprotocol);
        }
        if (extension != null) {
            headers.put(HttpHeader.SEC_WEBSOCKET_EXTENSIONS, extension);
        }
        request.setAttribute(HttpStream.UPGRADE_CONNECTION_ATTRIBUTE, connection);
        response.write(true, null, callback);
    }

    /**
     * Answers an RFC 8441 extended {@code CONNECT} (checked by {@link UpgradeChecks#checkExtendedConnect}) with
     * {@code 200} and makes {@code handler}'s session the connection of the request's HTTP/2 stream, what Jetty's
     * {@code RFC8441Handshaker} does: the connection reads and writes the stream's DATA frames through the tunnel's end
     * point, which HTTP/2 flow control paces, and the stream's other neighbours on the TCP connection go on as before.
     * Jetty's HTTP/2 stream switches to the WebSocket connection once the {@code 200} is written, and {@code callback}
     * then completes. The answer has no {@code Sec-WebSocket-Accept} (RFC 8441 section 5 has no key to hash).
     */
    static void upgradeStream(Request request, Response response, Callback callback, FrameHandler handler,
            @Nullable String subprotocol, @Nullable String extension, WebSocketComponents components,
            Configuration.Customizer configuration) {
        TunnelSupport tunnel = request.getTunnelSupport();
        if (tunnel == null) {
            throw new IllegalStateException("extended CONNECT without tunnel support");
        }
        // Through a StreamEndPoint, which tells the relay's write timeout that a write waits for the client's window.
        WebSocketConnection connection = newConnection(request, new StreamEndPoint(tunnel.getEndPoint()), handler,
                subprotocol, extension != null, components, configuration);
        response.setStatus(HttpStatus.OK_200);
        if (subprotocol != null) {
            response.getHeaders().put(HttpHeader.SEC_WEBSOCKET_SUBPROTOCOL, subprotocol);
        }
        if (extension != null) {
            response.getHeaders().put(HttpHeader.SEC_WEBSOCKET_EXTENSIONS, extension);
        }
        request.setAttribute(HttpStream.UPGRADE_CONNECTION_ATTRIBUTE, connection);
        response.write(true, null, callback);
    }

    /** The session of {@code handler} and its connection on {@code endPoint}, as Jetty's handshakers make them. */
    private static WebSocketConnection newConnection(Request request, EndPoint endPoint, FrameHandler handler,
            @Nullable String subprotocol, boolean deflate, WebSocketComponents components,
            Configuration.Customizer configuration) {
        Negotiated negotiated = negotiated(components, Behavior.SERVER, webSocketUri(request), subprotocol,
                deflate, request.isSecure());
        Context context = request.getContext();
        WebSocketCoreSession session = new WebSocketCoreSession(handler, Behavior.SERVER, negotiated, components) {
            @Override
            protected void handle(Runnable runnable) {
                context.run(runnable);
            }
        };
        configuration.customize(session);

        ConnectionMetaData metaData = request.getConnectionMetaData();
        Connector connector = metaData.getConnector();
        WebSocketConnection connection = new WebSocketConnection(endPoint, connector.getExecutor(),
                connector.getScheduler(), connector.getByteBufferPool(), session);
        session.setWebSocketConnection(connection);
        HttpConfiguration http = metaData.getHttpConfiguration();
        connection.setUseInputDirectByteBuffers(http.isUseInputDirectByteBuffers());
        connection.setUseOutputDirectByteBuffers(http.isUseOutputDirectByteBuffers());
        connector.getEventListeners().forEach(connection::addEventListener);
        return connection;
    }

    /**
     * What a relay leg's session negotiated, on either side: {@code subprotocol}, no extension in the frames' way (RSV1
     * allowed when the peers agreed on {@code permessage-deflate}, see {@link DeflatePassThrough}), and {@code uri}
     * without its query. Jetty decodes a session's query into its parameter map as UTF-8 and throws on bytes that are
     * not: a client's {@code ?x=%FF} would fail the backend leg after the backend's valid {@code 101}, counted against
     * that backend. Nothing of the proxy reads that map or the session's URI; the backend still gets the query in its
     * request line. {@code uri} is parsed again only when it has a query.
     */
    static Negotiated negotiated(WebSocketComponents components, Behavior behavior, URI uri,
            @Nullable String subprotocol, boolean deflate, boolean secure) {
        ExtensionStack extensions = DeflatePassThrough.negotiated(components, behavior, deflate);
        URI withoutQuery = uri;
        if (uri.getRawQuery() != null) {
            String text = uri.toString();
            withoutQuery = URI.create(text.substring(0, text.indexOf('?')));
        }
        return new Negotiated(withoutQuery, subprotocol, secure, extensions, WebSocketConstants.SPEC_VERSION_STRING);
    }

    /**
     * The request's URI with a WebSocket scheme and without its query (see {@link #negotiated}), parsed once. One that
     * does not parse (the backend's URI, built from the same path, did) is replaced by the scheme and authority alone.
     */
    private static URI webSocketUri(Request request) {
        HttpURI uri = request.getHttpURI();
        String scheme = request.isSecure() ? "wss://" : "ws://";
        try {
            return URI.create(scheme + uri.getAuthority() + uri.getPath());
        } catch (IllegalArgumentException e) {
            return URI.create(scheme + "invalid/");
        }
    }
}
