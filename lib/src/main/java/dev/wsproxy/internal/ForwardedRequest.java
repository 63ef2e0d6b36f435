package dev.wsproxy.internal;

import java.util.Objects;

import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Request;

import org.eclipse.jetty.http.HttpURI;
import org.jspecify.annotations.Nullable;

/**
 * One plain HTTP request forwarded on a route, across its attempts: the backend of the current attempt (for passive
 * health) and the route's {@link FailoverBudget}, the one a {@link Handshake} spends for an upgrade. An attempt starts
 * on the thread that handles the request, or on the one that saw the attempt before it fail; attempts never overlap,
 * but they run on different threads, hence the volatile fields.
 */
final class ForwardedRequest {

    final Route route;
    final HandshakeRequestView view;
    /** The route's {@link Timeouts}, read once for the request. */
    final Timeouts timeouts;
    /** The route's failover budget, spent by every backend picked for the request. */
    final FailoverBudget budget;
    private volatile @Nullable BackendState backend;
    private volatile @Nullable HttpURI target;
    private volatile BackendState.Trial trial = BackendState.Trial.NONE;
    /** The access log's token for how the current attempt failed; {@code null} while it has not. */
    private volatile @Nullable String failure;
    /** Whether a request of unknown length has a body ({@link #hasBody}); {@code null} until its first read. */
    private @Nullable Boolean hasBody;
    /** The chunk {@link #hasBody} read, until an attempt's body reads it ({@link #takePeeked}). */
    private Content.@Nullable Chunk peeked;

    ForwardedRequest(Route route, HandshakeRequestView view, Timeouts timeouts) {
        this.route = route;
        this.view = view;
        this.timeouts = timeouts;
        this.budget = new FailoverBudget(route.failover());
    }

    /**
     * Whether {@code request}, of unknown length and without {@code Transfer-Encoding} (HTTP/2 and later), has a body:
     * its first read tells, the first time it is asked. A request whose head ended its stream reads the end at once (a
     * {@code GET}): no body. Otherwise what that read gave is kept, for the attempt's body to read first
     * ({@link #takePeeked}): nothing yet, the body's first bytes, or its failure.
     */
    synchronized boolean hasBody(Request request) {
        if (hasBody == null) {
            Content.Chunk chunk = request.read();
            hasBody = chunk == null || Content.Chunk.isFailure(chunk) || !chunk.isLast() || chunk.hasRemaining();
            peeked = hasBody ? chunk : null;
        }
        return hasBody;
    }

    /** The chunk {@link #hasBody} read, once; {@code null} when there is none, or it was taken. */
    synchronized Content.@Nullable Chunk takePeeked() {
        Content.Chunk chunk = peeked;
        peeked = null;
        return chunk;
    }

    /** Releases the chunk {@link #hasBody} read if no attempt's body took it: the request has ended. */
    void releasePeeked() {
        Content.Chunk chunk = takePeeked();
        if (chunk != null) {
            chunk.release();
        }
    }

    /**
     * Sends the current attempt, counted in {@link #budget} when its backend was picked, to {@code target}, holding
     * {@code trial} (its backend's, or {@link BackendState.Trial#NONE}); the previous attempt's is released, if it
     * was not yet.
     */
    void attempt(BackendState state, HttpURI target, BackendState.Trial trial) {
        BackendState.Trial previous = this.trial;
        this.backend = state;
        this.target = target;
        this.trial = trial;
        this.failure = null;
        previous.release();
    }

    /**
     * The current attempt's hold on its backend's trial: released when the attempt's head is written (the trial goes
     * on) or it failed (after its failure was recorded), and at the latest when the request's response ends.
     */
    BackendState.Trial trial() {
        return trial;
    }

    /** Notes how the current attempt failed, as the access log's token ({@code backend_unreachable}). */
    void failed(String token) {
        this.failure = token;
    }

    /** How the current attempt failed, or {@code null}. */
    @Nullable String failure() {
        return failure;
    }

    /** The backend of the current attempt. */
    BackendState backend() {
        return Objects.requireNonNull(backend, "no attempt started");
    }

    /** The URI of the current attempt. */
    HttpURI target() {
        return Objects.requireNonNull(target, "no attempt started");
    }
}
