package dev.wsproxy.internal;

import java.time.Duration;

import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.http.HttpURI;
import org.eclipse.jetty.proxy.ProxyHandler;
import org.eclipse.jetty.server.Request;

import dev.wsproxy.BackendTls;

/**
 * Proxies plain HTTP requests on a route (the nginx {@code map $http_upgrade} case) with Jetty's {@link ProxyHandler}.
 * {@link WebSocketProxyHandler} picks the backend and stores the target URI and the route as request attributes;
 * this handler applies the same header policy as the WebSocket handshake ({@link ForwardedHeaders}), and the same
 * limits: as many connections per backend as handshakes in flight (Jetty's client allows 64, so the 65th long poll,
 * such as Socket.IO's fallback that holds a GET for 25 s, would wait behind the others), and the longest connect
 * timeout of the routes. A request still goes quiet for at most 30 s (the client's idle timeout, and the least the
 * proxy's connector has).
 */
final class HttpForwarder extends ProxyHandler {

    static final String TARGET_ATTRIBUTE = HttpForwarder.class.getName() + ".target";
    static final String ROUTE_ATTRIBUTE = HttpForwarder.class.getName() + ".route";
    /** The request's {@link HandshakeRequestView}, carrying what the route's authenticator allowed. */
    static final String VIEW_ATTRIBUTE = HttpForwarder.class.getName() + ".view";

    private final BackendTls tls;
    private final int maxConnectionsPerBackend;
    private final Duration connectTimeout;

    HttpForwarder(BackendTls tls, int maxConnectionsPerBackend, Duration connectTimeout) {
        this.tls = tls;
        this.maxConnectionsPerBackend = maxConnectionsPerBackend;
        this.connectTimeout = connectTimeout;
        setUseServerThreadPool(true);
    }

    @Override
    protected HttpURI rewriteHttpURI(Request clientToProxyRequest) {
        return (HttpURI) clientToProxyRequest.getAttribute(TARGET_ATTRIBUTE);
    }

    @Override
    protected void configureHttpClient(HttpClient httpClient) {
        super.configureHttpClient(httpClient);
        httpClient.setUserAgentField(null);
        // The same verification, trust, client certificate and protocol floor as the WebSocket backend leg.
        httpClient.setSslContextFactory(tls.newSslContextFactory());
        httpClient.setMaxConnectionsPerDestination(maxConnectionsPerBackend);
        httpClient.setMaxRequestsQueuedPerDestination(maxConnectionsPerBackend * 4);
        httpClient.setConnectTimeout(connectTimeout.toMillis());
    }

    @Override
    protected void copyRequestHeaders(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest) {
        Route route = (Route) clientToProxyRequest.getAttribute(ROUTE_ATTRIBUTE);
        ClientIdentity identity = (ClientIdentity) clientToProxyRequest.getAttribute(ClientIdentity.ATTRIBUTE);
        HandshakeRequestView view = (HandshakeRequestView) clientToProxyRequest.getAttribute(VIEW_ATTRIBUTE);
        proxyToServerRequest.headers(headers -> {
            ForwardedHeaders.copy(clientToProxyRequest, headers, route.preserveHost(), false, identity);
            if (view != null) {
                view.addAuthorizedHeaders(headers);
            }
        });
    }

    @Override
    protected void addProxyHeaders(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest) {
        // X-Forwarded-* were added with the copied headers; add Via like any HTTP proxy.
        addViaHeader(clientToProxyRequest, proxyToServerRequest);
    }
}
