package dev.wsproxy.internal;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.eclipse.jetty.util.Promise;
import org.eclipse.jetty.util.SocketAddressResolver;
import org.eclipse.jetty.util.thread.Scheduler;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The resolver of every backend name the proxy looks up: one look-up per name at a time, shared by all who ask for it
 * meanwhile, and at most {@value #MAX_LOOK_UPS} look-ups at a time in all. The backend {@code HttpClient} (proxied
 * sessions through {@link BackendHandshake}, health checks), the plain HTTP forwarder's ({@link HttpForwarder}) and
 * the routes that follow a DNS name ({@link DnsBackends}) use one instance, which the handler creates at each start.
 *
 * <h2>Why</h2>
 * A name is resolved with {@link InetAddress#getAllByName}, which blocks the thread that calls it, ignores interrupts
 * and the caller's timeout, and which the JDK serialises per name. Jetty's {@code SocketAddressResolver.Async}, the
 * {@code HttpClient}'s default, runs one on a pool thread per request: while the DNS server did not answer, a
 * reconnect storm to a backend named by a host name blocked one thread of the server's pool per pending handshake (up
 * to the route's 1024 per backend), and the pool no longer served any route, nor plain HTTP. Now a stall blocks one
 * thread per name, and at most {@value #MAX_LOOK_UPS} in all, whatever the traffic.
 *
 * <h2>What a request gets</h2>
 * <ul>
 * <li>An IP literal is answered at once on the caller's thread, never looked up nor queued ({@link BackendHandshake}
 *     does not even ask; Jetty's client does).
 * <li>A name being looked up: the request waits for that look-up's answer, without a thread of its own (its promise
 *     is added to the look-up's list), and gets the same addresses with its own port, or the same failure.
 * <li>A name not being looked up: a new look-up on the executor when fewer than {@value #MAX_LOOK_UPS} run;
 *     otherwise the name waits its turn in a queue of up to {@value #MAX_QUEUED_NAMES} names, first come first served;
 *     beyond that the request fails at once with an {@link UnknownHostException} that says so, and the client gets
 *     {@code 502} as for any name that does not resolve.
 * <li>Every request ends within the resolver's timeout (the {@code HttpClient}'s address resolution timeout, 15 s by
 *     default, as with Jetty's resolver) with a {@link TimeoutException}: the client gets {@code 504}. A handshake
 *     that ends first (its timer, its client leaving, the proxy stopping) leaves at once: it passes its future under
 *     {@link #GIVE_UP_CONTEXT_KEY}, whose completion withdraws it from the list, so nothing of it stays behind until
 *     the look-up returns.
 * <li>A queued name whose requests have all ended is dropped from the queue, never looked up.
 * </ul>
 * Nothing is cached beyond the look-up in flight: the next request after an answer starts a new look-up, so the
 * proxy follows DNS changes as the JVM's own cache allows ({@code networkaddress.cache.ttl}, 30 s by default).
 *
 * <h2>Why {@value #MAX_LOOK_UPS}, and a queue</h2>
 * Look-ups are per name, so the cap binds only when more than {@value #MAX_LOOK_UPS} different names are looked up at
 * the same moment. A healthy look-up (an answer from the JVM's cache, or one round trip to the DNS server) gives its
 * slot back within milliseconds, so the backend names a proxy is configured with rarely come near it; when DNS stalls,
 * the cap is what the proxy can lose of its thread pool (200 threads by default), however many names it has. Past the
 * cap a name waits rather than fails: a slot usually frees within milliseconds, and each request is bounded by its
 * own deadline anyway. The limit of this: a name whose answer the JVM has cached waits behind
 * {@value #MAX_LOOK_UPS} stalled look-ups of other names, when there are that many.
 *
 * <h2>Threads</h2>
 * {@link #resolve} never blocks and may be called on any thread. Look-ups run on the executor (the server's thread
 * pool); the answer, or the failure, is handed to every request of the name on the thread that looked it up (or that
 * the executor refused), the failure of a full queue on the caller's, and a timeout on the scheduler's. The promises
 * called must not block (the proxy's and Jetty's client's only start a non-blocking connect). The state is guarded by
 * one lock, never held while a promise or the look-up runs.
 */
final class CoalescingResolver implements SocketAddressResolver {

    private static final Logger LOG = LoggerFactory.getLogger(CoalescingResolver.class);

    /** The most look-ups running at a time, across all names: the most pool threads a DNS stall can block. */
    static final int MAX_LOOK_UPS = 8;
    /** The most names waiting for a look-up slot; a request for one more fails at once. */
    static final int MAX_QUEUED_NAMES = 1024;
    /**
     * The key, in a request's context, of a {@link CompletionStage} whose completion withdraws the request: its caller
     * gave up (a handshake's deadline, the client leaving, the proxy stopping), and its promise is not called any more.
     */
    static final String GIVE_UP_CONTEXT_KEY = CoalescingResolver.class.getName() + ".giveUp";

    /** Resolves a host name to its addresses; blocks. */
    @FunctionalInterface
    interface LookUp {
        InetAddress[] lookUp(String host) throws UnknownHostException;
    }

    private final Executor executor;
    private final Scheduler scheduler;
    private final long timeoutMillis;
    private final LookUp lookUp;
    private final int maxLookUps;
    private final int maxQueuedNames;
    private final Object lock = new Object();
    /** Every name being looked up or queued, by its lower-case spelling. */
    private final Map<String, Name> names = new HashMap<>();
    /** The names waiting for a slot, in the order they came. */
    private final ArrayDeque<Name> queue = new ArrayDeque<>();
    private int running;

    /**
     * @param executor where look-ups run (the server's thread pool)
     * @param scheduler times each request out
     * @param timeoutMillis the longest a request waits; 0 for no limit
     * @param lookUp the blocking look-up, {@link InetAddress#getAllByName} but in tests
     */
    CoalescingResolver(Executor executor, Scheduler scheduler, long timeoutMillis, LookUp lookUp) {
        this(executor, scheduler, timeoutMillis, lookUp, MAX_LOOK_UPS, MAX_QUEUED_NAMES);
    }

    /** With other limits: tests fill the queue without a thousand names. */
    CoalescingResolver(Executor executor, Scheduler scheduler, long timeoutMillis, LookUp lookUp, int maxLookUps,
            int maxQueuedNames) {
        this.executor = executor;
        this.scheduler = scheduler;
        this.timeoutMillis = timeoutMillis;
        this.lookUp = lookUp;
        this.maxLookUps = maxLookUps;
        this.maxQueuedNames = maxQueuedNames;
    }

    @Override
    public void resolve(String host, int port, Map<String, Object> context,
            Promise<List<InetSocketAddress>> promise) {
        InetAddress literal;
        try {
            literal = BackendHandshake.ipLiteral(unbracketed(host));
        } catch (UnknownHostException e) {
            promise.failed(e);
            return;
        }
        if (literal != null) {
            promise.succeeded(List.of(new InetSocketAddress(literal, port)));
            return;
        }
        Request request = new Request(promise, port);
        Name start = null;
        boolean full = false;
        synchronized (lock) {
            String key = host.toLowerCase(Locale.ROOT);
            Name name = names.get(key);
            if (name == null) {
                if (running < maxLookUps) {
                    name = new Name(key, host);
                    name.started = true;
                    running++;
                    start = name;
                } else if (queue.size() < maxQueuedNames) {
                    name = new Name(key, host);
                    queue.add(name);
                } else {
                    full = true;
                }
                if (name != null) {
                    names.put(key, name);
                }
            }
            if (name != null) {
                name.requests.add(request);
                request.name = name;
            }
        }
        if (full) {
            promise.failed(new UnknownHostException(host + ": not looked up, " + maxQueuedNames
                    + " names already wait for a look-up (" + maxLookUps + " at a time)"));
            return;
        }
        if (timeoutMillis > 0) {
            try {
                request.timer(scheduler.schedule(() -> expire(request), timeoutMillis, TimeUnit.MILLISECONDS));
            } catch (RuntimeException e) {
                // The scheduler stopping: the request ends with the look-up, or with its caller.
                LOG.debug("No timer for the look-up of {}", host, e);
            }
        }
        if (context.get(GIVE_UP_CONTEXT_KEY) instanceof CompletionStage<?> giveUp) {
            giveUp.whenComplete((result, failure) -> withdraw(request));
        }
        if (start != null) {
            submit(start);
        }
    }

    private static String unbracketed(String host) {
        return host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
    }

    /** Hands the look-up of {@code name} to the executor; one it refuses fails that name's requests. */
    private void submit(Name name) {
        try {
            executor.execute(() -> lookUp(name));
        } catch (RuntimeException e) {
            // For instance a full or stopped thread pool (RejectedExecutionException).
            finish(name, null, e);
        }
    }

    private void lookUp(Name name) {
        InetAddress[] addresses = null;
        Throwable failure = null;
        try {
            addresses = lookUp.lookUp(name.host);
            if (addresses == null || addresses.length == 0) {
                failure = new UnknownHostException(name.host + ": no address");
            }
        } catch (Throwable x) {
            // Jetty's resolver passes on whatever the look-up threw; the slot is given back whatever it was.
            failure = x;
        }
        finish(name, failure == null ? addresses : null, failure);
    }

    /**
     * Ends the look-up of {@code name}: its slot goes to the next queued name that still has requests, and its
     * requests get the answer.
     */
    private void finish(Name name, InetAddress @Nullable [] addresses, @Nullable Throwable failure) {
        List<Request> requests;
        Name next = null;
        synchronized (lock) {
            names.remove(name.key, name);
            requests = new ArrayList<>(name.requests);
            name.requests.clear();
            name.done = true;
            running--;
            while (!queue.isEmpty()) {
                Name queued = queue.poll();
                // A queued name keeps only requests still waiting (see withdraw): one without is dropped.
                if (!queued.requests.isEmpty()) {
                    queued.started = true;
                    running++;
                    next = queued;
                    break;
                }
                names.remove(queued.key, queued);
            }
        }
        for (Request request : requests) {
            request.cancelTimer();
            try {
                if (addresses != null) {
                    List<InetSocketAddress> resolved = new ArrayList<>(addresses.length);
                    for (InetAddress address : addresses) {
                        resolved.add(new InetSocketAddress(address, request.port));
                    }
                    request.promise.succeeded(resolved);
                } else {
                    request.promise.failed(failure != null ? failure : new UnknownHostException(name.host));
                }
            } catch (Throwable x) {
                // One caller's fault must not keep the answer from the others.
                LOG.warn("The answer for {} failed its receiver", name.host, x);
            }
        }
        if (next != null) {
            submit(next);
        }
    }

    /** The request waited as long as the resolver allows. */
    private void expire(Request request) {
        if (withdraw(request)) {
            request.promise.failed(new TimeoutException("DNS timeout " + timeoutMillis + " ms"));
        }
    }

    /**
     * Takes {@code request} off its name's list (its caller gave up, or its time is up); a queued name left without
     * requests leaves the queue. {@code true} when it was still waiting.
     */
    private boolean withdraw(Request request) {
        synchronized (lock) {
            Name name = request.name;
            if (name == null || name.done || !name.requests.remove(request)) {
                return false;
            }
            if (!name.started && name.requests.isEmpty()) {
                queue.remove(name);
                names.remove(name.key, name);
            }
        }
        request.cancelTimer();
        return true;
    }

    /** How many look-ups run: for tests. */
    int running() {
        synchronized (lock) {
            return running;
        }
    }

    /** How many names wait for a look-up slot: for tests. */
    int queuedNames() {
        synchronized (lock) {
            return queue.size();
        }
    }

    /** The requests waiting for {@code host}'s look-up, whether it runs or is queued: for tests. */
    int waiting(String host) {
        synchronized (lock) {
            Name name = names.get(host.toLowerCase(Locale.ROOT));
            return name == null ? 0 : name.requests.size();
        }
    }

    @Override
    public String toString() {
        return "CoalescingResolver[running=" + running() + "/" + maxLookUps + ", queued=" + queuedNames() + "]";
    }

    /** One name, looked up or waiting for a slot, and the requests waiting for its answer; guarded by the lock. */
    private static final class Name {
        final String key;
        final String host;
        final Set<Request> requests = new LinkedHashSet<>();
        boolean started;
        boolean done;

        Name(String key, String host) {
            this.key = key;
            this.host = host;
        }
    }

    /** One caller's request; {@link #name} is guarded by the lock. */
    private static final class Request {
        final Promise<List<InetSocketAddress>> promise;
        final int port;
        @Nullable Name name;
        private volatile Scheduler.@Nullable Task timer;
        private volatile boolean ended;

        Request(Promise<List<InetSocketAddress>> promise, int port) {
            this.promise = promise;
            this.port = port;
        }

        /** Sets the timer, or cancels it at once when the request ended before it was set. */
        void timer(Scheduler.Task task) {
            timer = task;
            if (ended) {
                task.cancel();
            }
        }

        void cancelTimer() {
            ended = true;
            Scheduler.Task task = timer;
            if (task != null) {
                task.cancel();
            }
        }
    }
}
