package dev.wsproxy;

/**
 * What a route does with requests that are not WebSocket upgrades (nginx's {@code map $http_upgrade} case).
 *
 * @see ProxyBuilder#plainHttp(PlainHttp)
 * @see RouteBuilder#plainHttp(PlainHttp)
 */
public enum PlainHttp {
    /** Proxy them as plain HTTP to a backend of the route, picked by the route's selector (the default). */
    PROXY_TO_BACKEND,
    /** Pass them to the next handler: the one wrapped by {@link WebSocketProxy#handler()}. */
    NEXT_HANDLER
}
