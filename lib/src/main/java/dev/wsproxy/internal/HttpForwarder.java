package dev.wsproxy.internal;

import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;

import org.eclipse.jetty.client.ContinueProtocolHandler;
import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.client.ProcessingProtocolHandler;
import org.eclipse.jetty.client.ProtocolHandler;
import org.eclipse.jetty.client.ProtocolHandlers;
import org.eclipse.jetty.client.Result;
import org.eclipse.jetty.client.transport.HttpConversation;
import org.eclipse.jetty.client.transport.HttpExchange;
import org.eclipse.jetty.client.transport.HttpRequest;
import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpException;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.http.HttpURI;
import org.eclipse.jetty.http.HttpVersion;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.io.Connection;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.proxy.ProxyHandler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.SocketAddressResolver;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.util.thread.Invocable.InvocationType;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.TimeoutPolicy;

/**
 * Proxies plain HTTP requests on a route (the nginx {@code map $http_upgrade} case) with Jetty's {@link ProxyHandler}.
 * {@link WebSocketProxyHandler} picks the backend and stores the route, the target URI and the request's view in a
 * request attribute ({@link ForwardedRequest}); this handler applies the same header policy as the WebSocket handshake
 * ({@link ForwardedHeaders}), and these limits: up to 4,096 connections per backend (Jetty's client allows 64, so the
 * 65th long poll, such as Socket.IO's fallback that holds a GET for 25 s, would wait behind the others), the longest
 * connect timeout of the routes, and the proxy's one resolver of backend names ({@link CoalescingResolver}: one look-up
 * per name at a time, a few in all). The backend may keep a request waiting, or a response quiet (a long poll,
 * server-sent events), as long as the route's idle timeout, as nginx's {@code proxy_read_timeout} on the location
 * (Jetty's client would allow 30 s); the connector's idle timeout cuts a request only while a read from the client or a
 * write to it is pending (Jetty's server ignores it otherwise). An HTTP/2 client that resets its stream meanwhile has
 * its request to the backend aborted at once ({@link ForwardedRequest#watchClient}), and is logged as gone. The headers
 * a backend's response names in its {@code Connection} are its hop-by-hop ones (RFC 9110 section 7.6.1) and do not
 * reach the client; Jetty drops only its fixed list. A response head larger than the client's connection writes
 * ({@link Responses#headRoom}) gets {@code 502}, as from nginx, before any of it is written (and none longer than
 * {@link BackendHandshake#MAX_RESPONSE_HEAD} is read); so does a {@code 101}, to a request that offered no upgrade, and
 * its connection is closed; a {@code 204} goes without the {@code Content-Length} it must not carry. Interim responses
 * ({@code 102}, {@code 103 Early Hints}) pass with their end-to-end headers only (Jetty writes them as the backend sent
 * them, hop-by-hop and framing headers included), those that fit in the head the client's connection writes
 * ({@link #endToEnd}), and never to an HTTP/1.0 client, which would read one as the response (RFC 9110 section 15.2);
 * any other {@code 1xx} but {@code 100} is dropped, which ProxyHandler wrote as the final response; so are they before
 * the {@code 100} an upload that expects {@code 100-continue} waits for, which Jetty's client took for the final answer
 * ({@link #doStart}). Such an upload answered without the {@code 100} gets {@code 502} for a head too large or a
 * {@code 101} too, though Jetty's client has the whole response when the proxy sees it. A request body goes with the
 * client's framing: its {@code Content-Length}, also on an upload that expects {@code 100-continue} (Jetty copies its
 * body only after the backend's {@code 100}, as one of unknown length, which its client would send chunked), or chunked
 * as it came; and with no {@code Content-Type} when the client sent none ({@link UntypedBody}).
 *
 * <h2>Passive health and failover</h2>
 * A request that failed in connecting to its backend counts a failure against the backend for passive health, as a
 * failed backend handshake does ({@link WebSocketProxyHandler#countConnectFailure}): one that no connection carried
 * (Jetty's client failed it while it waited for the connection: refused, host unknown, connect timeout), or one whose
 * TLS handshake with the backend failed (Jetty's client sends a request as soon as TCP is up, and TLS completes on its
 * first write: the request has begun, but the backend could read none of it). Nothing of it reached the backend; when
 * nothing of its body was read from the client either, it goes to the next candidate within the route's failover
 * budget ({@link WebSocketProxyHandler#forwardToAnother}), which gets all of it (nginx's
 * {@code proxy_next_upstream error timeout}). Jetty's client reads a body only once the request is on a connection,
 * and {@link AttemptBody} notes when it does and keeps Jetty's client from failing the client's request with an unread
 * body (Jetty would fail the request's reads for good); with {@code Expect: 100-continue} {@link ProxyHandler} copies
 * the body only after the backend's {@code 100}. A response from the backend, whatever its status, counts as a
 * success; a written request head does not (a frozen process whose kernel still accepts connections takes it). Nothing
 * is retried once the request may have reached the backend (a reset, its idle timeout): the backend may have acted on
 * it.
 *
 * <p>A request to a backend on trial (back from passive health's down, see {@link BackendState}) holds the trial
 * ({@link ForwardedRequest#trial}) until its head is written to the backend, or its connection failed (after that
 * failure was counted, which takes the backend down again), or it failed otherwise. Written, it lets the trial go
 * without ending it: the next request tests the backend too, one connect at a time, and a long poll does not keep
 * the backend out while it waits for its answer; the first response ends the trial ({@link Attempt#answered}).
 *
 * <p>Each request's access line ({@link AccessLog#forwarded}) is written once its response has completed or failed
 * ({@link #onProxyToClientResponseComplete}, {@link #onProxyToClientResponseFailure}), whichever attempt gave it; a
 * response the backend sent in full before it took all of the request (a final status to an upload that expects
 * {@code 100-continue}) has completed, though Jetty's client fails the request;
 * a request refused before any attempt, or after failover ran out of backends, is logged where it is refused.
 */
final class HttpForwarder extends ProxyHandler {

    private static final Logger LOG = LoggerFactory.getLogger(HttpForwarder.class);

    /**
     * The client request's {@link ForwardedRequest}: its route, its target, and its {@link HandshakeRequestView},
     * carrying what the route's authenticator allowed.
     */
    static final String FORWARDED_ATTRIBUTE = HttpForwarder.class.getName() + ".forwarded";
    /** The {@link Attempt} a request to a backend makes. */
    private static final String ATTEMPT_ATTRIBUTE = HttpForwarder.class.getName() + ".attempt";

    /** The names the response being copied on this thread lists in its {@code Connection} header. */
    private static final ThreadLocal<@Nullable Set<String>> RESPONSE_CONNECTION_TOKENS = new ThreadLocal<>();

    /**
     * The largest request head written to a backend; Jetty's client writes 8 KiB at most, which a head the client's
     * connector accepted (8 KiB by default) passes once the forwarding headers, {@code Via} and an authenticator's are
     * added. The buffer is taken from the pool only for a head that overflows the usual 4 KiB one.
     */
    static final int MAX_REQUEST_HEAD = 64 * 1024;

    /** The access log's token for a client gone before its response was written. */
    static final String CLIENT_LEFT = "client_left";

    private final WebSocketProxyHandler proxy;
    private final int maxConnectionsPerBackend;
    private volatile Duration connectTimeout = TimeoutPolicy.DEFAULT_CONNECT_TIMEOUT;
    private volatile @Nullable SocketAddressResolver resolver;
    private volatile SslContextFactory.@Nullable Client tls;

    HttpForwarder(WebSocketProxyHandler proxy, int maxConnectionsPerBackend) {
        this.proxy = proxy;
        this.maxConnectionsPerBackend = maxConnectionsPerBackend;
        setUseServerThreadPool(true);
    }

    /**
     * Sets the TCP connect timeout of the client the next start builds ({@link #doStop} drops the last one): the
     * longest of the routes, which the proxy reads when it starts (its policies may change in between).
     */
    void connectTimeout(Duration timeout) {
        this.connectTimeout = timeout;
    }

    /** The TCP connect timeout of the client the next start builds, or of the running one if none was set since. */
    Duration connectTimeout() {
        return connectTimeout;
    }

    /**
     * Sets the resolver of the client the next start builds: the proxy's {@link CoalescingResolver}, which its
     * WebSocket backend client shares, instead of Jetty's, which blocks a pool thread per request while DNS stalls.
     */
    void resolver(SocketAddressResolver resolver) {
        this.resolver = resolver;
    }

    /**
     * Sets the TLS factory of the client the next start builds: the one of the proxy's WebSocket backend client,
     * started already, so that both legs have one verification, trust and client certificate, made once per start
     * (a {@code BackendTls.custom} supplier is asked once) and reloaded at one place. That client
     * manages it; this one leaves it alone (Jetty manages only a bean that is not running when it is added).
     */
    void sslContextFactory(SslContextFactory.Client factory) {
        this.tls = factory;
    }

    /**
     * Also puts the handler of {@code 100 Continue} last among the client's protocol handlers, after one for the
     * {@code 1xx} that none of ProxyHandler's takes ({@link DroppedInterim}). Jetty's continue handler comes first and
     * takes any response to a request that expects {@code 100-continue} until its {@code 100}: it took a {@code 104}
     * (or a {@code 102}, a {@code 103}) for the final answer and failed the request, so the client got {@code 502} and
     * the backend's {@code 100}, its final answer and the body were lost. ProxyHandler sets its handlers once it has
     * configured and started its client ({@link #configureHttpClient} is too early), before it takes any request.
     */
    @Override
    protected void doStart() throws Exception {
        super.doStart();
        ProtocolHandlers handlers = getHttpClient().getProtocolHandlers();
        ProtocolHandler expectContinue = handlers.remove(ContinueProtocolHandler.NAME);
        handlers.put(new DroppedInterim());
        if (expectContinue != null) {
            handlers.put(expectContinue);
        }
    }

    /**
     * Also drops the stopped client, so that the next start builds and configures a new one: {@link ProxyHandler}
     * builds its client only when it has none, and configures it partly after starting it (no protocol handlers but
     * its own, no content decoders), which a stopped {@code HttpClient} forgets and a restarted one replaces with
     * Jetty's defaults: a {@code 401} without {@code WWW-Authenticate} failed as a broken challenge, an upload that
     * expects {@code 100-continue} never sent its body, and every request offered {@code Accept-Encoding: gzip}.
     */
    @Override
    protected void doStop() throws Exception {
        super.doStop();
        HttpClient stopped = getHttpClient();
        if (stopped != null) {
            removeBean(stopped);
            setHttpClient(null);
        }
    }

    private static ForwardedRequest forwarded(Request clientToProxyRequest) {
        return (ForwardedRequest) clientToProxyRequest.getAttribute(FORWARDED_ATTRIBUTE);
    }

    @Override
    protected HttpURI rewriteHttpURI(Request clientToProxyRequest) {
        return forwarded(clientToProxyRequest).target();
    }

    /** Also marks the request with its {@link Attempt}, which notes when a connection to the backend carries it. */
    @Override
    protected org.eclipse.jetty.client.Request newProxyToServerRequest(Request clientToProxyRequest,
            HttpURI newHttpURI) {
        ForwardedRequest forwarded = forwarded(clientToProxyRequest);
        Attempt attempt = new Attempt(forwarded.backend(), forwarded.trial());
        return super.newProxyToServerRequest(clientToProxyRequest, newHttpURI)
                .attribute(ATTEMPT_ATTRIBUTE, attempt)
                .onRequestBegin(request -> attempt.begun = true)
                // Its head written: the connection (and its TLS handshake) worked, which says nothing yet of the
                // backend's health (a frozen process's kernel takes it): the trial's next request may connect now.
                .onRequestCommit(request -> attempt.trial.release());
    }

    @Override
    protected org.eclipse.jetty.client.Request.Content newProxyToServerRequestContent(Request clientToProxyRequest,
            Response proxyToClientResponse, org.eclipse.jetty.client.Request proxyToServerRequest) {
        return new AttemptBody(clientToProxyRequest, attempt(proxyToServerRequest));
    }

    private static Attempt attempt(org.eclipse.jetty.client.Request proxyToServerRequest) {
        return (Attempt) proxyToServerRequest.getAttributes().get(ATTEMPT_ATTRIBUTE);
    }

    @Override
    protected void configureHttpClient(HttpClient httpClient) {
        super.configureHttpClient(httpClient);
        httpClient.setUserAgentField(null);
        // A body the client sent without a Content-Type gets none, as from nginx (see UntypedBody).
        httpClient.setDefaultRequestContentType(null);
        // The same factory as the WebSocket backend leg: its verification, trust, client certificate, protocol floor.
        SslContextFactory.Client factory = tls;
        if (factory != null) {
            httpClient.setSslContextFactory(factory);
        }
        // Jetty's client sets no limit: a backend that never ended its head had it buffered without bound. The same
        // limit as the WebSocket leg's; a head past what the client's connection writes gets 502 anyway (onHeaders).
        httpClient.setMaxResponseHeadersSize(BackendHandshake.MAX_RESPONSE_HEAD);
        httpClient.setMaxRequestHeadersSize(MAX_REQUEST_HEAD);
        httpClient.setMaxConnectionsPerDestination(maxConnectionsPerBackend);
        httpClient.setMaxRequestsQueuedPerDestination(maxConnectionsPerBackend * 4);
        httpClient.setConnectTimeout(connectTimeout.toMillis());
        SocketAddressResolver names = resolver;
        if (names != null) {
            httpClient.setSocketAddressResolver(names);
        }
    }

    @Override
    protected void sendProxyToServerRequest(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest, Response proxyToClientResponse,
            Callback proxyToClientCallback) {
        Timeouts timeouts = forwarded(clientToProxyRequest).timeouts;
        org.eclipse.jetty.client.Request.Content body = proxyToServerRequest.getBody();
        if (body != null && body.getContentType() != null
                && !clientToProxyRequest.getHeaders().contains(HttpHeader.CONTENT_TYPE)) {
            // ProxyHandler holds back the body of a request that expects 100-continue in an AsyncRequestContent,
            // which says application/octet-stream.
            proxyToServerRequest.body(new UntypedBody(body));
        }
        // 0 (no idle timeout on the route) is none for Jetty's client too.
        proxyToServerRequest.idleTimeout(timeouts.idleTimeout().toMillis(), TimeUnit.MILLISECONDS);
        super.sendProxyToServerRequest(clientToProxyRequest, proxyToServerRequest, proxyToClientResponse,
                proxyToClientCallback);
        // Aborted if the client leaves while it waits (ForwardedRequest.watchClient), at once if it has left already.
        forwarded(clientToProxyRequest).sent(proxyToServerRequest);
    }

    @Override
    protected org.eclipse.jetty.client.Response.CompleteListener newServerToProxyResponseListener(
            Request clientToProxyRequest, org.eclipse.jetty.client.Request proxyToServerRequest,
            Response proxyToClientResponse, Callback proxyToClientCallback) {
        ForwardedRequest forwarded = forwarded(clientToProxyRequest);
        // ProxyHandler aborts the backend's response when a write to the client fails, which reads as the backend's
        // failure (onServerToProxyResponseFailure): the client's failed write is noted first, for the access log.
        Response toClient = new Response.Wrapper(clientToProxyRequest, proxyToClientResponse) {
            @Override
            public void write(boolean last, ByteBuffer content, Callback callback) {
                super.write(last, content, new ClientWrite(forwarded, callback));
            }
        };
        return new ProxyResponseListener(clientToProxyRequest, proxyToServerRequest, toClient,
                proxyToClientCallback) {
            @Override
            public void onBegin(org.eclipse.jetty.client.Response serverToProxyResponse) {
                // The backend answered: reachable, whatever its status (as a refused handshake is not a failure).
                attempt(proxyToServerRequest).answered();
                int status = serverToProxyResponse.getStatus();
                if (status == HttpStatus.SWITCHING_PROTOCOLS_101) {
                    // No upgrade was offered (Upgrade is hop-by-hop): ProxyHandler wrote the 101 to the client, bare,
                    // whose connection went on as HTTP, and Jetty's client kept the connection as upgraded, to nobody.
                    refuse(serverToProxyResponse, new HttpException.RuntimeException(HttpStatus.BAD_GATEWAY_502,
                            "101 to a request that offered no upgrade"));
                } else if (!HttpStatus.isInterim(status)) {
                    super.onBegin(serverToProxyResponse);
                }
            }

            @Override
            public void onHeaders(org.eclipse.jetty.client.Response serverToProxyResponse) {
                if (attempt(proxyToServerRequest).refused) {
                    return;
                }
                int status = serverToProxyResponse.getStatus();
                if (HttpStatus.isInterim(status)) {
                    // A 1xx none of the client's protocol handlers took (a 100 after the one the continue handler
                    // took; DroppedInterim takes the others): dropped, as nginx drops it. ProxyHandler wrote it as
                    // the final response, and the client waited for the real one for good.
                    if (LOG.isDebugEnabled()) {
                        LOG.debug("Interim {} from {} dropped for {}", status,
                                attempt(proxyToServerRequest).backend.backend(), forwarded.view);
                    }
                    return;
                }
                Set<String> named = ForwardedHeaders.connectionTokens(serverToProxyResponse.getHeaders());
                int head = 0;
                for (HttpField field : serverToProxyResponse.getHeaders()) {
                    if (!named.contains(ForwardedHeaders.canonical(field.getLowerCaseName()))) {
                        head += Responses.size(field);
                    }
                }
                int room = Responses.headRoom(toClient);
                if (head > room) {
                    // Jetty's generator would fail the head at the first write, once committed: the client got
                    // Jetty's 500, and Jetty logged the request with its query. A 502 instead, as from nginx ("upstream
                    // sent too big header").
                    refuse(serverToProxyResponse, new HttpException.RuntimeException(HttpStatus.BAD_GATEWAY_502,
                            "response head of " + head + " bytes (expected: <= " + room + ")"));
                    return;
                }
                // Jetty copies the headers within this call, through filterServerToProxyResponseField.
                RESPONSE_CONNECTION_TOKENS.set(named);
                try {
                    super.onHeaders(serverToProxyResponse);
                } finally {
                    RESPONSE_CONNECTION_TOKENS.remove();
                }
                if (status == HttpStatus.NO_CONTENT_204) {
                    // A length a 204 must not carry (RFC 9110 section 8.6), whose body Jetty's client does not read:
                    // Jetty's server would fail the response for the bytes never written. nginx drops it too.
                    toClient.getHeaders().remove(HttpHeader.CONTENT_LENGTH);
                }
            }

            @Override
            public void onContent(org.eclipse.jetty.client.Response serverToProxyResponse, Content.Chunk chunk,
                    Runnable demander) {
                if (!attempt(proxyToServerRequest).refused) {
                    super.onContent(serverToProxyResponse, chunk, demander);
                }
            }

            @Override
            public void onSuccess(org.eclipse.jetty.client.Response serverToProxyResponse) {
                if (attempt(proxyToServerRequest).refused) {
                    return;
                }
                if (!HttpStatus.isInterim(serverToProxyResponse.getStatus())) {
                    super.onSuccess(serverToProxyResponse);
                    return;
                }
                // The final response follows on the same exchange, which Jetty's client has marked complete: made
                // ready for it as Jetty's own interim handlers do (EarlyHintsProtocolHandler), or it would be ignored.
                HttpConversation conversation = ((HttpRequest) serverToProxyResponse.getRequest()).getConversation();
                HttpExchange exchange = conversation.getExchanges().peekLast();
                if (exchange != null) {
                    exchange.resetResponse();
                }
            }

            @Override
            public void onComplete(Result result) {
                Attempt attempt = attempt(proxyToServerRequest);
                if (result.isFailed() && result.getResponseFailure() == null && attempt.bodyFailure == null
                        && !attempt.refused) {
                    // The backend answered in full before it took all of the request: a final status to an upload
                    // that expects 100-continue, whose body Jetty's client then fails, or an early answer to a body
                    // it did not read. ProxyHandler took that for the backend's failure (backend_failed), and ended
                    // the client's exchange without waiting for the response's last write.
                    result = new Result(result.getRequest(), null, result.getResponse(), null);
                }
                super.onComplete(result);
            }

            /**
             * Refuses the backend's response, with {@code 502} ({@link #onServerToProxyResponseFailure}). Noted on
             * the attempt first: a response to an upload that expects {@code 100-continue}, answered without the
             * {@code 100}, is complete when it comes here (Jetty's continue handler replays it once it has all of
             * it), so that the abort fails only the request, which would read as an early answer ({@link #onComplete}),
             * and the response's headers, body and end still come here, none of which goes to the client.
             */
            private void refuse(org.eclipse.jetty.client.Response serverToProxyResponse, Throwable failure) {
                attempt(proxyToServerRequest).refused = true;
                serverToProxyResponse.abort(failure);
            }
        };
    }

    @Override
    protected void onServerToProxyResponse102Processing(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest, HttpFields serverToProxyResponseHeaders,
            Response proxyToClientResponse) {
        if (!isHttp10(clientToProxyRequest)) {
            super.onServerToProxyResponse102Processing(clientToProxyRequest, proxyToServerRequest,
                    endToEnd(serverToProxyResponseHeaders, proxyToClientResponse), proxyToClientResponse);
        }
    }

    @Override
    protected void onServerToProxyResponse103EarlyHints(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest, HttpFields serverToProxyResponseHeaders,
            Response proxyToClientResponse) {
        if (!isHttp10(clientToProxyRequest)) {
            super.onServerToProxyResponse103EarlyHints(clientToProxyRequest, proxyToServerRequest,
                    endToEnd(serverToProxyResponseHeaders, proxyToClientResponse), proxyToClientResponse);
        }
    }

    /**
     * Whether the client speaks HTTP/1.0, which gets no interim response (RFC 9110 section 15.2): it would read the
     * first status line as the response. Jetty writes one whatever the version.
     */
    private static boolean isHttp10(Request clientToProxyRequest) {
        return clientToProxyRequest.getConnectionMetaData().getHttpVersion() == HttpVersion.HTTP_1_0;
    }

    /**
     * An interim response's end-to-end headers ({@link ForwardedHeaders#isEndToEnd}), without a body's length, in the
     * backend's order while they fit in the head the client's connection can write ({@link Responses#headRoom}), as
     * a relayed refusal's: one that does not fit is dropped, and a smaller one after it still goes. Written whole, a
     * head larger than that overflowed Jetty's generator once the interim response was committed: the client got
     * neither it nor the final response, and the access line read {@code client_left}. Hints are optional; the final
     * response's head is checked on its own ({@code 502} when it does not fit).
     */
    static HttpFields endToEnd(HttpFields interim, Response toClient) {
        Set<String> named = ForwardedHeaders.connectionTokens(interim);
        HttpFields.Mutable kept = HttpFields.build(interim.size());
        int room = Responses.headRoom(toClient);
        for (HttpField field : interim) {
            String name = ForwardedHeaders.canonical(field.getLowerCaseName());
            if (ForwardedHeaders.isEndToEnd(name, named) && !name.equals("content-length")) {
                room = Responses.addIfItFits(kept, field, room, "an interim response");
            }
        }
        return kept;
    }

    @Override
    protected @Nullable HttpField filterServerToProxyResponseField(HttpField serverToProxyResponseField) {
        Set<String> named = RESPONSE_CONNECTION_TOKENS.get();
        String name = ForwardedHeaders.canonical(serverToProxyResponseField.getLowerCaseName());
        return named != null && named.contains(name) ? null : serverToProxyResponseField;
    }

    @Override
    protected void copyRequestHeaders(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest) {
        ForwardedRequest forwarded = forwarded(clientToProxyRequest);
        Route route = forwarded.route;
        ClientIdentity identity = (ClientIdentity) clientToProxyRequest.getAttribute(ClientIdentity.ATTRIBUTE);
        HandshakeRequestView view = forwarded.view;
        // The body's length as the client framed it: Jetty's client sends the length of the body it is given, and
        // for a request that expects 100-continue ProxyHandler gives it one of unknown length (it copies the client's
        // body only once the backend's 100 came), which went chunked. A chunked request has no length and stays
        // chunked; AttemptBody holds the body to its length.
        long length = declaredLength(clientToProxyRequest);
        proxyToServerRequest.headers(headers -> {
            ForwardedHeaders.copy(clientToProxyRequest, headers, route.preserveHost(), false, identity);
            if (view != null) {
                view.addAuthorizedHeaders(headers);
            }
            if (length >= 0) {
                headers.put(HttpHeader.CONTENT_LENGTH, length);
            }
        });
    }

    /** The length the client's {@code Content-Length} gives its body, or {@code -1} when it sent none (chunked). */
    private static long declaredLength(Request clientToProxyRequest) {
        long length = clientToProxyRequest.getLength();
        return length >= 0 && clientToProxyRequest.getHeaders().contains(HttpHeader.CONTENT_LENGTH) ? length : -1;
    }

    /**
     * Adds {@code Via} ({@code X-Forwarded-*} were added with the copied headers). Also, called where ProxyHandler
     * has decided on the body, gives the backend the body of a request of unknown length without
     * {@code Transfer-Encoding}, which only HTTP/2 and later send (they have no chunked coding): a streaming upload, a
     * {@code fetch} with a stream as its body. ProxyHandler forwards a body only when the request has a length or a
     * {@code Transfer-Encoding}: such a body was dropped, the backend got the request without it, and the client's
     * bytes were lost. Whether there is a body shows in the request's first read ({@link ForwardedRequest#hasBody}),
     * whose chunk the body reads first.
     */
    @Override
    protected void addProxyHeaders(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest) {
        addViaHeader(clientToProxyRequest, proxyToServerRequest);
        if (clientToProxyRequest.getLength() < 0
                && !clientToProxyRequest.getHeaders().contains(HttpHeader.TRANSFER_ENCODING)
                && clientToProxyRequest.getConnectionMetaData().getHttpVersion().getVersion() >= 20
                && forwarded(clientToProxyRequest).hasBody(clientToProxyRequest)) {
            proxyToServerRequest.body(new AttemptBody(clientToProxyRequest, attempt(proxyToServerRequest)));
        }
    }

    /**
     * A request that no connection carried counts against its backend and goes to the next candidate, when the
     * route's failover allows (see the class comment); otherwise the client gets {@code 504} for a timeout, connect
     * timeouts included, as from the WebSocket handshake and nginx, else {@code 502}. Jetty's {@link ProxyHandler}
     * answers {@code 504} only for a {@link TimeoutException} (the idle timeout), and a connect timeout is a
     * {@link SocketTimeoutException} (Jetty's {@code ManagedSelector}).
     */
    @Override
    protected void onServerToProxyResponseFailure(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest,
            org.eclipse.jetty.client.Response serverToProxyResponse, Response proxyToClientResponse,
            Callback proxyToClientCallback, Throwable failure) {
        Attempt attempt = attempt(proxyToServerRequest);
        try {
            serverToProxyResponseFailed(clientToProxyRequest, proxyToServerRequest, serverToProxyResponse,
                    proxyToClientResponse, proxyToClientCallback, attempt, failure);
        } finally {
            // A failure that says nothing about the backend leaves its trial to the next request.
            attempt.trial.release();
        }
    }

    private void serverToProxyResponseFailed(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest,
            org.eclipse.jetty.client.Response serverToProxyResponse, Response proxyToClientResponse,
            Callback proxyToClientCallback, Attempt attempt, Throwable failure) {
        ForwardedRequest forwarded = forwarded(clientToProxyRequest);
        boolean timeout = isTimeout(failure);
        int status = timeout ? HttpStatus.GATEWAY_TIMEOUT_504 : HttpStatus.BAD_GATEWAY_502;
        String reason;
        String token;
        Throwable bodyFailure = attempt.bodyFailure;
        if (bodyFailure != null) {
            // The client's body failed, not the backend. A client still connected sent what Jetty's parser refused
            // (a malformed chunk): it gets 400, as from nginx; or it stopped sending for the connector's idle
            // timeout: 408, as from nginx (client_body_timeout). A client gone is not answered: its connection
            // ended, or, over HTTP/2, its stream did (a reset, which its connection outlives).
            boolean gone = clientGone(clientToProxyRequest) || isRemoteEnd(bodyFailure);
            if (!gone && isTimeout(bodyFailure)) {
                status = HttpStatus.REQUEST_TIMEOUT_408;
                reason = "request body timed out";
                token = "body_timeout";
            } else if (!gone) {
                status = bodyFailure instanceof HttpException refused && refused.getCode() >= 400
                        && refused.getCode() < 500 ? refused.getCode() : HttpStatus.BAD_REQUEST_400;
                reason = "malformed request body";
                token = "bad_request";
            } else {
                // Nothing to answer: the request ends as a response the client could not get (499 in the log).
                forwarded.failed(CLIENT_LEFT);
                onProxyToClientResponseFailure(clientToProxyRequest, proxyToServerRequest, serverToProxyResponse,
                        proxyToClientResponse, proxyToClientCallback, bodyFailure);
                return;
            }
        } else if (forwarded.clientGone()) {
            // The client's stream ended while it waited, and its request to the backend was aborted for it
            // (ForwardedRequest.watchClient): nothing to answer, nothing failed at the backend (499 in the log).
            forwarded.failed(CLIENT_LEFT);
            onProxyToClientResponseFailure(clientToProxyRequest, proxyToServerRequest, serverToProxyResponse,
                    proxyToClientResponse, proxyToClientCallback, failure);
            return;
        } else if (isConnectFailure(attempt, failure) && isRunning()) {
            reason = "backend unreachable: " + failure;
            token = timeout ? "backend_timeout" : "backend_unreachable";
            // As a failed backend handshake is logged and reported (Handshake.failed).
            LOG.warn("Backend {} failed for {}: {}", attempt.backend.backend(), forwarded.view, reason);
            WebSocketProxyHandler.countConnectFailure(forwarded.route, attempt.backend);
            // After the failure was counted: on trial, the backend is down again before another request may try it.
            attempt.trial.release();
            forwarded.route.listener().onBackendConnectFailed(forwarded.view, attempt.backend.backend(), failure);
            if (!attempt.bodyRead && proxy.forwardToAnother(clientToProxyRequest, proxyToClientResponse,
                    proxyToClientCallback, forwarded, status, token, reason)) {
                return;
            }
        } else if (CLIENT_LEFT.equals(forwarded.failure())) {
            // The abort of a response whose write to the client failed (ClientWrite): nothing failed at the backend.
            reason = "client connection lost during the response";
            token = CLIENT_LEFT;
        } else if (timeout && attempt.awaitingClient) {
            // The route's idle timeout ran out while the backend waited for the rest of the body, which the client
            // stopped sending: its stall, not the backend's, as when the connector's idle timeout comes first (408).
            status = HttpStatus.REQUEST_TIMEOUT_408;
            reason = "request body timed out";
            token = "body_timeout";
        } else {
            reason = timeout ? "backend did not answer in time" : "backend failed: " + failure;
            token = timeout ? "backend_timeout" : "backend_failed";
        }
        // Logged when the response completes (onProxyToClientResponseComplete or Failure), with what it wrote.
        forwarded.failed(token);
        if (!proxyToClientResponse.isCommitted() && !CLIENT_LEFT.equals(token)) {
            // The proxy's own status, as for a refused handshake; a failure once the backend's response began to
            // reach the client is not a rejection (the connection is closed).
            forwarded.route.listener().onHandshakeRejected(forwarded.view, status,
                    LogText.within(reason, WebSocketProxyHandler.MAX_REASON));
        }
        // What ProxyHandler does, with the status above.
        Response.writeError(clientToProxyRequest, proxyToClientResponse, Callback.from(InvocationType.NON_BLOCKING,
                () -> onProxyToClientResponseComplete(clientToProxyRequest, proxyToServerRequest,
                        serverToProxyResponse, proxyToClientResponse, proxyToClientCallback),
                x -> onProxyToClientResponseFailure(clientToProxyRequest, proxyToServerRequest, serverToProxyResponse,
                        proxyToClientResponse, proxyToClientCallback, x)), status);
    }

    /** Writes the request's access line: its response is complete. */
    @Override
    protected void onProxyToClientResponseComplete(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest,
            org.eclipse.jetty.client.Response serverToProxyResponse, Response proxyToClientResponse,
            Callback proxyToClientCallback) {
        logCompleted(clientToProxyRequest, proxyToClientResponse, false);
        super.onProxyToClientResponseComplete(clientToProxyRequest, proxyToServerRequest, serverToProxyResponse,
                proxyToClientResponse, proxyToClientCallback);
    }

    /**
     * Writes the request's access line: its response could not be written to the client, gone (or its connection
     * failed), with {@code 499} if nothing of the response had been sent, as nginx logs it.
     */
    @Override
    protected void onProxyToClientResponseFailure(Request clientToProxyRequest,
            org.eclipse.jetty.client.Request proxyToServerRequest,
            org.eclipse.jetty.client.Response serverToProxyResponse, Response proxyToClientResponse,
            Callback proxyToClientCallback, Throwable failure) {
        logCompleted(clientToProxyRequest, proxyToClientResponse, true);
        super.onProxyToClientResponseFailure(clientToProxyRequest, proxyToServerRequest, serverToProxyResponse,
                proxyToClientResponse, proxyToClientCallback, failure);
    }

    /**
     * The access line of a forwarded request, once: the status the client got, the bytes of body read from it and
     * written to it (Jetty's own counts of the exchange), and how it failed, if it did: the backend
     * ({@link ForwardedRequest#failure}), or else the client ({@code client_left}).
     */
    private static void logCompleted(Request clientToProxyRequest, Response proxyToClientResponse, boolean failed) {
        ForwardedRequest forwarded = forwarded(clientToProxyRequest);
        // The request's last attempt has ended, whatever it was: its trial, if it held one, too, and the first chunk
        // of a body no attempt read.
        forwarded.trial().release();
        forwarded.releasePeeked();
        if (!AccessLog.LOG.isInfoEnabled()) {
            return;
        }
        String reason = forwarded.failure();
        int status = proxyToClientResponse.getStatus();
        if (failed) {
            if (reason == null) {
                reason = CLIENT_LEFT;
            }
            if (!proxyToClientResponse.isCommitted()) {
                status = Handshake.CLIENT_CLOSED_REQUEST;
            }
        }
        AccessLog.forwarded(forwarded.view, forwarded.backend().backend(),
                Request.getContentBytesRead(clientToProxyRequest),
                Response.getContentBytesWritten(proxyToClientResponse), status, reason);
    }

    /**
     * Drops a {@code 1xx} other than {@code 100}, {@code 102} and {@code 103} (which ProxyHandler's own handlers take):
     * {@code 104 Upload Resumption Supported} and the like, as nginx drops them. Passed on, it would lose its headers
     * (Jetty's server writes those of a {@code 103} only), and a {@code 104} without its {@code Location} is of no
     * use. Jetty's handler of {@code 102}, whose listener makes the exchange ready for the next response (and passes a
     * failure on to the request's own listeners), for any of them; placed before the continue handler, so that the
     * {@code 100} an upload waits for, and its final answer, still come.
     */
    private static final class DroppedInterim extends ProcessingProtocolHandler {
        @Override
        public String getName() {
            return "dropped-interim";
        }

        @Override
        public boolean accept(org.eclipse.jetty.client.Request request,
                org.eclipse.jetty.client.Response response) {
            int status = response.getStatus();
            return HttpStatus.isInterim(status) && status != HttpStatus.CONTINUE_100;
        }

        @Override
        protected void onProcessing(org.eclipse.jetty.client.Request request, HttpFields responseHeaders) {
            if (LOG.isDebugEnabled()) {
                LOG.debug("Interim response dropped from {}", attempt(request).backend.backend());
            }
        }
    }

    /**
     * A write of the backend's response to the client that, when it fails, notes that the client failed it
     * ({@code client_left}) before the write's own callback has the backend's response aborted.
     */
    private static final class ClientWrite implements Callback {
        private final ForwardedRequest forwarded;
        private final Callback callback;

        ClientWrite(ForwardedRequest forwarded, Callback callback) {
            this.forwarded = forwarded;
            this.callback = callback;
        }

        @Override
        public void succeeded() {
            callback.succeeded();
        }

        @Override
        public void failed(Throwable failure) {
            forwarded.failed(CLIENT_LEFT);
            callback.failed(failure);
        }

        @Override
        public InvocationType getInvocationType() {
            return callback.getInvocationType();
        }
    }

    /**
     * Tells whether the client's connection has ended (closed, reset, or its input shut down): how a body that failed
     * because the client left is told from one Jetty's parser refused, which both end in an "Early EOF" of code 400
     * (the parser stops reading a connection whose request it refused).
     */
    private static boolean clientGone(Request request) {
        Connection connection = request.getConnectionMetaData().getConnection();
        EndPoint endPoint = connection == null ? null : connection.getEndPoint();
        return endPoint == null || !endPoint.isOpen() || endPoint.isInputShutdown();
    }

    /**
     * Whether a read of the client's body failed because the client ended its stream: Jetty's servers fail a read
     * with an {@link java.io.EOFException} for the peer's end (the connection's end of file, an HTTP/2 stream's
     * {@code RST_STREAM}, which {@code HttpStreamOverHTTP2.onFailure} tells a remote failure so), and with an
     * {@link HttpException} for what their parser refused, even where that is an {@code EofException} too (HTTP/1.1's
     * bad chunk, an {@code HttpEofException}).
     */
    private static boolean isRemoteEnd(Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof HttpException) {
                return false;
            }
            if (t instanceof java.io.EOFException) {
                return true;
            }
        }
        return false;
    }

    private static boolean isTimeout(Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof TimeoutException || t instanceof SocketTimeoutException) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether a request failed in connecting to its backend, so that nothing of it reached the backend: before any
     * connection carried it, refused, unreachable, host unknown, connect timeout (not the proxy's own failures: its
     * client stopping, the destination's queue full); or in the TLS handshake, which Jetty's client completes on the
     * request's first write, so that the request has begun, but the backend could read none of it.
     */
    private static boolean isConnectFailure(Attempt attempt, Throwable failure) {
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (attempt.begun ? t instanceof SSLHandshakeException
                    : t instanceof SocketException || t instanceof UnknownHostException
                            || t instanceof SocketTimeoutException || t instanceof SSLException) {
                return true;
            }
        }
        return false;
    }

    /**
     * One request to a backend: whether a connection carried it (Jetty's client began sending it) and whether its body
     * was read from the client. Set on Jetty's client threads, read when the request has completed.
     */
    private static final class Attempt {
        final BackendState backend;
        /** The attempt's hold on its backend's trial ({@link BackendState#tryTrial}), or none. */
        final BackendState.Trial trial;
        volatile boolean begun;
        volatile boolean bodyRead;
        /** Whether the proxy refused the backend's response (a {@code 101}, a head too large): {@code 502}. */
        volatile boolean refused;
        /** How reading the client's body failed (a malformed body, the client gone), or {@code null}. */
        volatile @Nullable Throwable bodyFailure;
        /** Whether the body waits for the client's next bytes ({@link AttemptBody#demand}): the client is behind. */
        volatile boolean awaitingClient;

        Attempt(BackendState backend, BackendState.Trial trial) {
            this.backend = backend;
            this.trial = trial;
        }

        /** The backend answered: a success, which ends a trial. */
        void answered() {
            backend.recordSuccess();
            trial.release();
        }
    }

    /**
     * The client's body for one attempt. Jetty's client fails the body of a request it could not send, and the
     * client's request with it, for good (its reads fail from then on); a body not read yet is left as it is, so that
     * another backend can still get all of it, or, if none does, it stays unread, as any handler may leave a body.
     *
     * <p>A body that ends short of the {@code Content-Length} the backend was sent, or runs past it, fails, as a
     * malformed body (400). Jetty's HTTP/1.1 parser reads exactly that length, but its HTTP/2 server checks DATA frames
     * against {@code content-length} and not a stream that ends without them (a HEADERS frame, or trailers, that ends
     * it), and a user's connector that admits {@code Transfer-Encoding} with {@code Content-Length}
     * ({@code RFC2616_LEGACY}) reads the body chunked and keeps the length. Jetty's client, which checks no length,
     * sent what came: the backend read the rest of a longer body, or the start of the next request on that connection
     * for the missing part of a shorter one, as a request of its own, smuggled past the route and its hooks.
     */
    private static final class AttemptBody extends ProxyRequestContent {
        private final ForwardedRequest forwarded;
        private final Attempt attempt;
        /** The client's {@code Content-Length}, sent to the backend, or {@code -1}. */
        private final long declared;
        /** Bytes of the body read so far; read by one thread at a time (Jetty's client). */
        private long bytes;

        AttemptBody(Request clientToProxyRequest, Attempt attempt) {
            super(clientToProxyRequest);
            this.forwarded = forwarded(clientToProxyRequest);
            this.attempt = attempt;
            this.declared = declaredLength(clientToProxyRequest);
        }

        @Override
        public Content.Chunk read() {
            attempt.bodyRead = true;
            // First what finding the body read, if anything (see addProxyHeaders).
            Content.Chunk peeked = forwarded.takePeeked();
            Content.Chunk chunk = peeked != null ? peeked : super.read();
            if (chunk != null && declared >= 0 && !Content.Chunk.isFailure(chunk)) {
                bytes += chunk.remaining();
                if (bytes > declared || chunk.isLast() && bytes < declared) {
                    chunk.release();
                    chunk = Content.Chunk.from(new HttpException.RuntimeException(HttpStatus.BAD_REQUEST_400,
                            "body of " + bytes + " bytes, Content-Length " + declared), true);
                }
            }
            if (Content.Chunk.isFailure(chunk)) {
                attempt.bodyFailure = chunk.getFailure();
            } else if (chunk != null) {
                // Not cleared by the demand's callback, which a failed request (the idle timeout) runs too.
                attempt.awaitingClient = false;
            }
            return chunk;
        }

        @Override
        public void demand(Runnable demandCallback) {
            attempt.bodyRead = true;
            attempt.awaitingClient = true;
            super.demand(demandCallback);
        }

        @Override
        public void fail(Throwable failure, boolean last) {
            if (attempt.bodyRead) {
                super.fail(failure, last);
            }
        }
    }

    /**
     * A body without a content type, for a client's body that had none: Jetty's client would add the type its body
     * names ({@code application/octet-stream} for the one {@link ProxyHandler} holds back until the backend's
     * {@code 100}), and nginx adds none. Everything else is the body's.
     */
    private static final class UntypedBody implements org.eclipse.jetty.client.Request.Content {
        private final org.eclipse.jetty.client.Request.Content body;

        UntypedBody(org.eclipse.jetty.client.Request.Content body) {
            this.body = body;
        }

        @Override
        public @Nullable String getContentType() {
            return null;
        }

        @Override
        public long getLength() {
            return body.getLength();
        }

        @Override
        public Content.@Nullable Chunk read() {
            return body.read();
        }

        @Override
        public void demand(Runnable demandCallback) {
            body.demand(demandCallback);
        }

        @Override
        public void fail(Throwable failure) {
            body.fail(failure);
        }

        @Override
        public void fail(Throwable failure, boolean last) {
            body.fail(failure, last);
        }

        @Override
        public boolean rewind() {
            return body.rewind();
        }
    }
}
