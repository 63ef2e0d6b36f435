package dev.wsproxy.internal;

import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.util.Promise;
import org.eclipse.jetty.util.SocketAddressResolver;
import org.eclipse.jetty.util.thread.Scheduler;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.Backend;

/**
 * Keeps a route's backends equal to the addresses its DNS name resolves to. Look-ups go through the proxy's
 * {@link CoalescingResolver}, as every backend name's do: they block, so they run on the proxy's thread pool, never on
 * a selector thread, one per name at a time (a handshake to a backend of the same name shares it) and a few at a
 * time in all; the next one is scheduled when the previous one is done. A new answer replaces the list as
 * {@code updateBackends} does, but a drained backend that stays in it stays draining: the answer says which addresses
 * exist, not that the operator's drain is over ({@link RouteBackends#follow}). A look-up that fails or times out (the
 * resolver's timeout, 15 s) keeps the list, and the next one is tried one refresh later; a look-up still stalled then
 * is joined, not started again.
 *
 * <p>A look-up the thread pool refuses (its queue full) is tried again one refresh later, with one warning per run of
 * refusals: unhandled, the refusal ended in the scheduler, which drops a task's exception, and nothing scheduled a
 * look-up again. It is not run on the scheduler's thread instead: a look-up blocks, and every timer of the proxy
 * shares that thread.
 */
final class DnsBackends {

    private static final Logger LOG = LoggerFactory.getLogger(DnsBackends.class);

    private final Route route;
    private final Route.Dns dns;
    private final Scheduler scheduler;
    private final SocketAddressResolver resolver;
    private volatile boolean stopped;
    private volatile Scheduler.@Nullable Task next;
    /** Whether the last look-up was refused by the executor: the warning is logged once per run of refusals. */
    private volatile boolean refused;
    private List<Backend> last = List.of(); // touched by one look-up at a time

    /** @param resolver the proxy's resolver of backend names, which the backend clients use too */
    DnsBackends(Route route, Route.Dns dns, Scheduler scheduler, SocketAddressResolver resolver) {
        this.route = route;
        this.dns = dns;
        this.scheduler = scheduler;
        this.resolver = resolver;
    }

    /**
     * With a resolver of its own, running {@code lookUp} on {@code executor}: tests change the answer, which the JVM's
     * cannot.
     */
    DnsBackends(Route route, Route.Dns dns, Executor executor, Scheduler scheduler, CoalescingResolver.LookUp lookUp) {
        this(route, dns, scheduler, new CoalescingResolver(executor, scheduler, 0, lookUp));
    }

    void start() {
        submit();
    }

    void stop() {
        stopped = true;
        Scheduler.Task task = next;
        if (task != null) {
            task.cancel();
        }
    }

    /** The look-up's answer: the route follows it. */
    private void resolved(List<InetSocketAddress> addresses) {
        if (stopped) {
            return;
        }
        runAgain();
        URI template = dns.template().uri();
        try {
            List<Backend> backends = new ArrayList<>();
            // Each address once: a route tells its backends apart by URI (RouteSettings.checkedBackends), and an
            // answer may repeat an address (a hosts file listing it twice, a resolver merging A and AAAA look-ups).
            Set<InetAddress> seen = new LinkedHashSet<>();
            for (InetSocketAddress resolved : addresses) {
                seen.add(resolved.getAddress());
            }
            for (InetAddress address : seen) {
                String host = address instanceof Inet6Address
                        ? "[" + address.getHostAddress() + "]" : address.getHostAddress();
                int port = template.getPort();
                Backend backend = Backend.of(template.getScheme() + "://" + host + (port < 0 ? "" : ":" + port)
                        + (template.getRawPath() == null ? "" : template.getRawPath()))
                        .withWeight(dns.template().weight());
                backends.add(dns.template().isBackup() ? backend.asBackup() : backend);
            }
            backends.sort(Comparator.comparing(Backend::toString));
            if (!backends.equals(last)) {
                route.backends().follow(backends);
                LOG.info("Route {}: {} resolved to {}", route.prefix(), template.getHost(), backends);
                last = backends;
            }
        } catch (RuntimeException e) {
            LOG.warn("Route {}: could not follow {}; keeping {}", route.prefix(), template.getHost(), last, e);
        } finally {
            scheduleNext();
        }
    }

    /** The look-up failed, timed out, or the thread pool refused it (see the class comment). */
    private void failed(Throwable failure) {
        if (stopped) {
            return;
        }
        if (failure instanceof RejectedExecutionException) {
            if (!refused) {
                refused = true;
                LOG.warn("Route {}: the thread pool refused the look-up of {} ({}); the backends stay as they are, "
                        + "trying again every {}", route.prefix(), dns.template().uri().getHost(), failure.toString(),
                        dns.refresh());
            }
        } else {
            runAgain();
            LOG.warn("Route {}: could not resolve {}; keeping {}", route.prefix(), dns.template().uri().getHost(), last,
                    failure);
        }
        scheduleNext();
    }

    /** A look-up ran: the end of a run of refusals, if there was one. */
    private void runAgain() {
        if (refused) {
            refused = false;
            LOG.info("Route {}: look-ups of {} run again", route.prefix(), dns.template().uri().getHost());
        }
    }

    private void scheduleNext() {
        if (!stopped) {
            next = scheduler.schedule(this::submit, dns.refresh().toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    /** Asks the resolver; its answer, or its failure, schedules the next look-up. */
    private void submit() {
        if (stopped) {
            return;
        }
        // Port 0: only the addresses are kept; the template's port goes into each backend's URI. A request still
        // waiting at stop ends with the look-up or at the resolver's timeout, without effect.
        resolver.resolve(dns.template().uri().getHost(), 0, Map.of(), Promise.from(this::resolved, this::failed));
    }
}
