package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

import org.eclipse.jetty.util.Promise;
import org.eclipse.jetty.util.thread.ScheduledExecutorScheduler;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The backend resolver against a look-up the test blocks and counts (the JVM's can be made to do neither): one look-up
 * per name at a time, a few at a time in all, nothing kept after the answer, and no request left behind.
 */
class CoalescingResolverTest {

    private static final Duration WAIT = Duration.ofSeconds(10);

    private final ExecutorService pool = Executors.newCachedThreadPool();
    private final ScheduledExecutorScheduler scheduler = new ScheduledExecutorScheduler("resolver-test", true);
    /** Released by the test: every look-up waits for it. */
    private final CountDownLatch release = new CountDownLatch(1);
    /** How many look-ups of each name started. */
    private final Map<String, AtomicInteger> calls = new ConcurrentHashMap<>();
    private final AtomicInteger running = new AtomicInteger();
    private final AtomicInteger mostRunning = new AtomicInteger();
    /** What a look-up answers once released; {@code null} for a failure. */
    private volatile InetAddress[] answer;

    @BeforeEach
    void start() throws Exception {
        scheduler.start();
        answer = new InetAddress[] {address(1), address(2)};
    }

    @AfterEach
    void stop() throws Exception {
        release.countDown();
        pool.shutdownNow();
        scheduler.stop();
    }

    private static InetAddress address(int last) throws UnknownHostException {
        return InetAddress.getByAddress(new byte[] {10, 0, 0, (byte) last});
    }

    /** Blocks until released, as {@code getAllByName} does while the DNS server is silent. */
    private InetAddress[] blockingLookUp(String host) throws UnknownHostException {
        calls.computeIfAbsent(host, h -> new AtomicInteger()).incrementAndGet();
        mostRunning.accumulateAndGet(running.incrementAndGet(), Math::max);
        try {
            if (!release.await(WAIT.toSeconds() * 3, TimeUnit.SECONDS)) {
                throw new AssertionError("look-up of " + host + " never released");
            }
            InetAddress[] addresses = answer;
            if (addresses == null) {
                throw new UnknownHostException(host + ": SERVFAIL");
            }
            return addresses;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new UnknownHostException("interrupted");
        } finally {
            running.decrementAndGet();
        }
    }

    /** With the proxy's limits. */
    private CoalescingResolver resolver(long timeoutMillis) {
        return new CoalescingResolver(pool, scheduler, timeoutMillis, this::blockingLookUp);
    }

    private CoalescingResolver resolver(long timeoutMillis, int maxLookUps, int maxQueuedNames) {
        return new CoalescingResolver(pool, scheduler, timeoutMillis, this::blockingLookUp, maxLookUps,
                maxQueuedNames);
    }

    private int calls(String host) {
        AtomicInteger count = calls.get(host);
        return count == null ? 0 : count.get();
    }

    /** A promise whose outcome the test reads. */
    private static final class Answer implements Promise<List<InetSocketAddress>> {
        final CompletableFuture<List<InetSocketAddress>> future = new CompletableFuture<>();
        final AtomicInteger completions = new AtomicInteger();

        @Override
        public void succeeded(List<InetSocketAddress> result) {
            completions.incrementAndGet();
            future.complete(result);
        }

        @Override
        public void failed(Throwable failure) {
            completions.incrementAndGet();
            future.completeExceptionally(failure);
        }

        List<InetSocketAddress> get() throws Exception {
            return future.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        }

        Throwable failure() {
            try {
                future.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                return e.getCause();
            } catch (Exception e) {
                throw new AssertionError("no failure: " + e, e);
            }
            throw new AssertionError("succeeded: " + future.join());
        }
    }

    private static Answer resolve(CoalescingResolver resolver, String host, int port) {
        Answer answer = new Answer();
        resolver.resolve(host, port, Map.of(), answer);
        return answer;
    }

    @Test
    void looksANameUpOnceForEveryRequestThatComesMeanwhile() throws Exception {
        // Jetty's resolver ran one blocking look-up on a pool thread per request: 200 handshakes to a name whose DNS
        // server was silent held 200 threads of the server's pool.
        CoalescingResolver resolver = resolver(0);
        List<Answer> answers = new ArrayList<>();
        List<Thread> callers = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            int caller = i;
            // Requests from several threads at once, each with a port of its own.
            Thread thread = new Thread(() -> {
                for (int j = 0; j < 50; j++) {
                    Answer answer = resolve(resolver, "chat.test", 8000 + caller * 50 + j);
                    synchronized (answers) {
                        answers.add(answer);
                    }
                }
            });
            thread.start();
            callers.add(thread);
        }
        for (Thread caller : callers) {
            caller.join();
        }
        await().atMost(WAIT).until(() -> running.get() == 1);

        assertThat(resolver.waiting("chat.test")).isEqualTo(200);
        assertThat(calls("chat.test")).as("look-ups started").isOne();
        assertThat(answers).allMatch(answer -> !answer.future.isDone());

        release.countDown();
        for (Answer answer : answers) {
            List<InetSocketAddress> addresses = answer.get();
            int port = addresses.get(0).getPort();
            assertThat(addresses).containsExactly(new InetSocketAddress(address(1), port),
                    new InetSocketAddress(address(2), port));
        }
        assertThat(answers.stream().map(answer -> answer.future.join().get(0).getPort()).distinct())
                .as("each with its own port").hasSize(200);
        assertThat(answers).allMatch(answer -> answer.completions.get() == 1);
        assertThat(calls("chat.test")).isOne();
        assertThat(mostRunning.get()).isOne();
        assertThat(resolver.waiting("chat.test")).isZero();
        assertThat(resolver.running()).isZero();
    }

    @Test
    void looksUpAtMostTheCapOfNamesAtATimeAndTheOthersInTurn() throws Exception {
        int names = CoalescingResolver.MAX_LOOK_UPS * 3;
        CoalescingResolver resolver = resolver(0);
        List<Answer> answers = new ArrayList<>();
        for (int i = 0; i < names; i++) {
            answers.add(resolve(resolver, "backend-" + i + ".test", 8080));
            answers.add(resolve(resolver, "backend-" + i + ".test", 8081));
        }
        await().atMost(WAIT).until(() -> running.get() == CoalescingResolver.MAX_LOOK_UPS);

        assertThat(resolver.running()).isEqualTo(CoalescingResolver.MAX_LOOK_UPS);
        assertThat(resolver.queuedNames()).isEqualTo(names - CoalescingResolver.MAX_LOOK_UPS);
        assertThat(calls).as("names looked up so far, the first ones")
                .hasSize(CoalescingResolver.MAX_LOOK_UPS).containsKey("backend-0.test");

        release.countDown();
        for (Answer answer : answers) {
            assertThat(answer.get()).hasSize(2);
        }
        assertThat(calls).hasSize(names);
        assertThat(calls.values()).allMatch(count -> count.get() == 1);
        assertThat(mostRunning.get()).as("look-ups at a time").isEqualTo(CoalescingResolver.MAX_LOOK_UPS);
        assertThat(resolver.running()).isZero();
        assertThat(resolver.queuedNames()).isZero();
    }

    @Test
    void givesTheLookUpsFailureToEveryRequestOfTheName() throws Exception {
        CoalescingResolver resolver = resolver(0);
        answer = null;
        List<Answer> answers = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            answers.add(resolve(resolver, "gone.test", 8080));
        }
        await().atMost(WAIT).until(() -> running.get() == 1);

        release.countDown();
        for (Answer answer : answers) {
            assertThat(answer.failure()).isInstanceOf(UnknownHostException.class).hasMessageContaining("SERVFAIL");
        }
        assertThat(calls("gone.test")).isOne();
        assertThat(resolver.running()).isZero();
    }

    @Test
    void keepsNoAnswerOnceItIsGiven() throws Exception {
        // The JVM's cache applies below the resolver; the proxy itself must see each DNS change.
        CoalescingResolver resolver = resolver(0);
        release.countDown();
        assertThat(resolve(resolver, "chat.test", 8080).get()).hasSize(2);

        answer = new InetAddress[] {address(3)};
        assertThat(resolve(resolver, "chat.test", 8080).get())
                .containsExactly(new InetSocketAddress(address(3), 8080));
        assertThat(calls("chat.test")).isEqualTo(2);
    }

    @Test
    void answersAnIpLiteralAtOnceWithoutALookUp() throws Exception {
        // Jetty's client asks its resolver for IP literals too: they must not wait behind stalled names.
        CoalescingResolver resolver = resolver(0, 1, 0);
        Answer stalled = resolve(resolver, "stalled.test", 8080);
        await().atMost(WAIT).until(() -> running.get() == 1);

        assertThat(resolve(resolver, "10.0.0.7", 8080).future).isCompletedWithValue(
                List.of(new InetSocketAddress(address(7), 8080)));
        assertThat(resolve(resolver, "[::1]", 8080).future.join().get(0).getAddress().isLoopbackAddress()).isTrue();
        assertThat(resolve(resolver, "::1", 8080).future.join()).hasSize(1);
        assertThat(calls).containsOnlyKeys("stalled.test");
        assertThat(stalled.future).isNotDone();
    }

    @Test
    void refusesANameAtOnceWhenTheQueueOfNamesIsFull() throws Exception {
        CoalescingResolver resolver = resolver(0, 1, 1);
        Answer running = resolve(resolver, "first.test", 8080);
        Answer queued = resolve(resolver, "second.test", 8080);
        Answer alsoQueued = resolve(resolver, "second.test", 8081);

        Answer refused = resolve(resolver, "third.test", 8080);

        assertThat(refused.future).isCompletedExceptionally();
        assertThat(refused.failure()).isInstanceOf(UnknownHostException.class)
                .hasMessageContaining("third.test").hasMessageContaining("1 names already wait");
        release.countDown();
        assertThat(running.get()).hasSize(2);
        assertThat(queued.get()).hasSize(2);
        assertThat(alsoQueued.get()).hasSize(2);
        assertThat(calls).containsOnlyKeys("first.test", "second.test");
    }

    @Test
    void dropsARequestWhoseCallerGaveUpAndANameNobodyWaitsForAnyMore() throws Exception {
        // A handshake that ends first (its timer, its client gone) must not stay in the list until a stalled look-up
        // returns: a storm of reconnects would pile up there.
        CoalescingResolver resolver = resolver(0, 1, 4);
        CompletableFuture<Void> firstHandshake = new CompletableFuture<>();
        CompletableFuture<Void> queuedHandshake = new CompletableFuture<>();
        Answer gaveUp = new Answer();
        resolver.resolve("stalled.test", 8080, Map.of(CoalescingResolver.GIVE_UP_CONTEXT_KEY, firstHandshake),
                gaveUp);
        Answer stays = resolve(resolver, "stalled.test", 8081);
        Answer queuedGaveUp = new Answer();
        resolver.resolve("queued.test", 8080, Map.of(CoalescingResolver.GIVE_UP_CONTEXT_KEY, queuedHandshake),
                queuedGaveUp);
        await().atMost(WAIT).until(() -> running.get() == 1);
        assertThat(resolver.waiting("stalled.test")).isEqualTo(2);
        assertThat(resolver.queuedNames()).isOne();

        firstHandshake.completeExceptionally(new TimeoutException("handshake timer"));
        queuedHandshake.cancel(false);

        assertThat(resolver.waiting("stalled.test")).isOne();
        assertThat(resolver.queuedNames()).as("a queued name nobody waits for").isZero();
        release.countDown();
        assertThat(stays.get()).hasSize(2);
        assertThat(gaveUp.completions.get()).isZero();
        assertThat(queuedGaveUp.completions.get()).isZero();
        assertThat(calls).as("looked up").containsOnlyKeys("stalled.test");
        assertThat(resolver.running()).isZero();
    }

    @Test
    void timesARequestOutWhileTheLookUpGoesOnForTheOthers() throws Exception {
        // As Jetty's resolver did: a request waits the client's address resolution timeout at most (504).
        CoalescingResolver resolver = resolver(200);
        Answer early = resolve(resolver, "slow.test", 8080);
        await().atMost(WAIT).until(() -> running.get() == 1);

        assertThat(early.failure()).isInstanceOf(TimeoutException.class).hasMessageContaining("200 ms");
        assertThat(resolver.waiting("slow.test")).isZero();
        Answer late = resolve(resolver, "slow.test", 8080);
        assertThat(resolver.waiting("slow.test")).isOne();
        release.countDown();

        assertThat(late.get()).hasSize(2);
        assertThat(calls("slow.test")).as("the late request joined the look-up in flight").isOne();
        assertThat(early.completions.get()).isOne();
    }

    @Test
    void givesTheSlotBackWhenTheExecutorRefusesALookUp() throws Exception {
        AtomicInteger handed = new AtomicInteger();
        Set<String> refusedOnce = ConcurrentHashMap.newKeySet();
        CoalescingResolver resolver = new CoalescingResolver(task -> {
            handed.incrementAndGet();
            if (refusedOnce.add("first")) {
                throw new RejectedExecutionException("queue full");
            }
            pool.execute(task);
        }, scheduler, 0, this::blockingLookUp, 1, 4);
        release.countDown();

        assertThat(resolve(resolver, "chat.test", 8080).failure()).isInstanceOf(RejectedExecutionException.class);
        assertThat(resolver.running()).isZero();
        assertThat(resolve(resolver, "chat.test", 8080).get()).hasSize(2);
        assertThat(handed.get()).isEqualTo(2);
    }
}
