package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.eclipse.jetty.util.thread.ScheduledExecutorScheduler;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendStatus;

/**
 * A route's backends follow the answers of a resolver the test controls (the JVM's cannot be made to change its
 * answer): what a DNS change keeps, and what it must leave alone.
 */
class DnsBackendsTest {

    private final AtomicReference<InetAddress[]> answer = new AtomicReference<>();
    private final ScheduledExecutorScheduler scheduler = new ScheduledExecutorScheduler("dns-test", true);
    private Route route;
    private DnsBackends dns;

    @BeforeEach
    void start() throws Exception {
        scheduler.start();
        RouteSettings settings = new RouteSettings("/ws/");
        settings.dns(Backend.of("ws://chat.test:8080"), Duration.ofMillis(20));
        route = settings.resolve(RouteSettings.proxyDefaults(65_536));
        dns = new DnsBackends(route, route.dns(), Runnable::run, scheduler, host -> answer.get());
    }

    @AfterEach
    void stop() throws Exception {
        dns.stop();
        scheduler.stop();
    }

    private static InetAddress address(int last) throws Exception {
        return InetAddress.getByAddress(new byte[] {10, 0, 0, (byte) last});
    }

    private void answerAndAwait(InetAddress... addresses) {
        answer.set(addresses);
        awaitBackends(addresses);
    }

    /** Waits until the route's backends are {@code addresses}, in that order, each once. */
    private void awaitBackends(InetAddress... addresses) {
        List<String> expected = java.util.Arrays.stream(addresses)
                .map(address -> "ws://" + address.getHostAddress() + ":8080").toList();
        await().atMost(Duration.ofSeconds(5)).until(() -> route.backends().backends().stream()
                .map(backend -> backend.uri().toString()).toList().equals(expected));
    }

    private BackendState stateOf(String uri) {
        return route.backends().states().stream()
                .filter(state -> state.backend().uri().toString().equals(uri)).findFirst().orElseThrow();
    }

    @Test
    void keepsABackendDrainingWhenTheAnswerChanges() throws Exception {
        answer.set(new InetAddress[] {address(1), address(2)});
        dns.start();
        answerAndAwait(address(1), address(2));
        // What proxy.drain(backend, window) does to every state of the backend.
        stateOf("ws://10.0.0.1:8080").draining(true);

        answerAndAwait(address(1), address(3));

        assertThat(stateOf("ws://10.0.0.1:8080").state()).as("drained, and still in the answer")
                .isEqualTo(BackendStatus.State.DRAINING);
        assertThat(stateOf("ws://10.0.0.3:8080").state()).isEqualTo(BackendStatus.State.UP);
        // An explicit updateBackends with the backend in the list ends the draining, as documented.
        route.backends().replace(route.backends().backends());
        assertThat(stateOf("ws://10.0.0.1:8080").state()).isEqualTo(BackendStatus.State.UP);
    }

    @Test
    void keepsResolvingAfterTheExecutorRefusedALookUp() throws Exception {
        // The scheduled task handed each look-up to the executor without a catch: one RejectedExecutionException (a
        // full queue) went to the scheduler, which dropped it, nothing scheduled the next look-up, and the route's
        // backends never followed the name again, without a word.
        AtomicInteger handed = new AtomicInteger();
        Executor refusingTheSecond = task -> {
            if (handed.incrementAndGet() == 2) {
                throw new RejectedExecutionException("queue full");
            }
            task.run();
        };
        dns = new DnsBackends(route, route.dns(), refusingTheSecond, scheduler, host -> answer.get());
        answer.set(new InetAddress[] {address(1)});
        dns.start();
        awaitBackends(address(1));
        await().atMost(Duration.ofSeconds(5)).until(() -> handed.get() >= 2);

        answerAndAwait(address(2));

        assertThat(handed.get()).as("look-ups handed to the executor").isGreaterThan(2);
    }

    @Test
    void joinsAStalledLookUpAtEachRefreshInsteadOfStartingAnother() throws Exception {
        // Through the proxy's resolver, a look-up that stalls past the resolver's timeout keeps the list; each refresh
        // then asks again and joins the look-up in flight: one thread blocked, however long the stall.
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger lookUps = new AtomicInteger();
        AtomicInteger requests = new AtomicInteger();
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newCachedThreadPool();
        InetAddress[] answered = {address(1)};
        try {
            CoalescingResolver resolver = new CoalescingResolver(pool, scheduler, 50, host -> {
                lookUps.incrementAndGet();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return answered;
            });
            dns = new DnsBackends(route, route.dns(), scheduler, (host, port, context, promise) -> {
                requests.incrementAndGet();
                resolver.resolve(host, port, context, promise);
            });
            dns.start();
            await().atMost(Duration.ofSeconds(5)).until(() -> requests.get() >= 4);

            assertThat(lookUps.get()).isOne();
            assertThat(route.backends().backends()).isEmpty();
            release.countDown();
            awaitBackends(address(1));
        } finally {
            release.countDown();
            pool.shutdownNow();
        }
    }

    @Test
    void takesEachAddressOfAnAnswerOnce() throws Exception {
        // Twice in the list, 10.0.0.1 had one state for two entries: failover stopped at the second as already tried.
        answer.set(new InetAddress[] {address(1), address(2), address(1)});
        dns.start();

        awaitBackends(address(1), address(2));
        assertThat(route.backends().states()).hasSize(2);
    }

    @Test
    void bringsBackUpABackendTheAnswerLeftOutOnceWhileItsSessionsWereOpen() throws Exception {
        answer.set(new InetAddress[] {address(1), address(2)});
        dns.start();
        answerAndAwait(address(1), address(2));
        BackendState.Lease session = stateOf("ws://10.0.0.2:8080").acquire();

        answerAndAwait(address(1));
        answerAndAwait(address(1), address(2));

        BackendState back = stateOf("ws://10.0.0.2:8080");
        assertThat(back.activeSessions()).as("its own state, with its open session").isOne();
        assertThat(back.state()).as("removed meanwhile, never drained").isEqualTo(BackendStatus.State.UP);
        session.release();
    }
}
