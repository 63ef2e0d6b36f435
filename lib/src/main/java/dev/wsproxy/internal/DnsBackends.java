package dev.wsproxy.internal;

import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.util.thread.Scheduler;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.Backend;

/**
 * Keeps a route's backends equal to the addresses its DNS name resolves to. Look-ups block, so they run on the
 * proxy's thread pool, never on a selector thread; the next one is scheduled when the previous one is done. A new
 * answer replaces the list as {@code updateBackends} does, but a drained backend that stays in it stays draining: the
 * answer says which addresses exist, not that the operator's drain is over ({@link RouteBackends#follow}).
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
    private final Executor executor;
    private final Scheduler scheduler;
    private final Resolver resolver;
    private volatile boolean stopped;
    private volatile Scheduler.@Nullable Task next;
    /** Whether the last look-up was refused by the executor: the warning is logged once per run of refusals. */
    private volatile boolean refused;
    private List<Backend> last = List.of(); // touched by one look-up at a time

    /** Resolves a host name to its addresses; blocks. */
    @FunctionalInterface
    interface Resolver {
        InetAddress[] resolve(String host) throws UnknownHostException;
    }

    DnsBackends(Route route, Route.Dns dns, Executor executor, Scheduler scheduler) {
        this(route, dns, executor, scheduler, InetAddress::getAllByName);
    }

    /** With another resolver than the JVM's: tests change the answer, which the JVM's cannot. */
    DnsBackends(Route route, Route.Dns dns, Executor executor, Scheduler scheduler, Resolver resolver) {
        this.route = route;
        this.dns = dns;
        this.executor = executor;
        this.scheduler = scheduler;
        this.resolver = resolver;
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

    private void resolve() {
        if (stopped) {
            return;
        }
        URI template = dns.template().uri();
        try {
            InetAddress[] addresses = resolver.resolve(template.getHost());
            List<Backend> backends = new ArrayList<>();
            // Each address once: a route tells its backends apart by URI (RouteSettings.checkedBackends), and an
            // answer may repeat an address (a hosts file listing it twice, a resolver merging A and AAAA look-ups).
            for (InetAddress address : new LinkedHashSet<>(Arrays.asList(addresses))) {
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
        } catch (Exception e) {
            LOG.warn("Route {}: could not resolve {}; keeping {}", route.prefix(), template.getHost(), last, e);
        } finally {
            scheduleNext();
        }
    }

    private void scheduleNext() {
        if (!stopped) {
            next = scheduler.schedule(this::submit, dns.refresh().toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    /** Hands a look-up to the executor; one it refuses is tried again one refresh later (see the class comment). */
    private void submit() {
        if (stopped) {
            return;
        }
        try {
            executor.execute(this::resolve);
        } catch (RejectedExecutionException e) {
            if (!refused) {
                refused = true;
                LOG.warn("Route {}: the thread pool refused the look-up of {} ({}); the backends stay as they are, "
                        + "trying again every {}", route.prefix(), dns.template().uri().getHost(), e.toString(),
                        dns.refresh());
            }
            scheduleNext();
            return;
        }
        if (refused) {
            refused = false;
            LOG.info("Route {}: look-ups of {} run again", route.prefix(), dns.template().uri().getHost());
        }
    }
}
