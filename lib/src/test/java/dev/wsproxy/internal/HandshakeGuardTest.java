package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.component.AbstractLifeCycle;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.util.thread.ScheduledExecutorScheduler;
import org.eclipse.jetty.util.thread.Scheduler;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The guard's deadline task, driven by a scheduler the test runs by hand, on a real server and real sockets: one chain
 * of deadline tasks at a time, whatever the order in which a task starts and is cancelled.
 */
class HandshakeGuardTest {

    private final HandScheduler scheduler = new HandScheduler();
    private Server server;
    private HandshakeGuard guard;

    @AfterEach
    void stop() throws Exception {
        if (guard != null) {
            guard.uninstall();
        }
        if (server != null) {
            server.stop();
        }
    }

    @Test
    void aDeadlineTaskThatStartedAsItWasCancelledSchedulesNoSecondChain() throws Exception {
        guard = new HandshakeGuard(Duration.ofSeconds(30), Integer.MAX_VALUE);
        server = new Server(new QueuedThreadPool(), scheduler, null);
        // The connector times its sockets with a scheduler of its own: the server's is the guard's alone.
        ServerConnector connector = new ServerConnector(server, null, new ScheduledExecutorScheduler(), null, 1, 1,
                new HttpConnectionFactory());
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        server.addConnector(connector);
        server.start();
        guard.install(server, false);
        InetAddress loopback = InetAddress.getByName("127.0.0.1");

        HandTask first;
        try (Socket a = new Socket(loopback, connector.getLocalPort())) {
            await().atMost(Duration.ofSeconds(5)).until(() -> guard.pending() == 1);
            first = scheduler.onlyLive();
        }
        // The last pending connection left: the guard cancels its task. Had the task already started (the scheduler's
        // thread waiting for the guard's lock), the cancel did not stop it: it runs below, after a new connection
        // made the guard schedule the task that replaces it.
        await().atMost(Duration.ofSeconds(5)).until(() -> guard.pending() == 0);
        assertThat(first.cancelled).as("the first task, cancelled").isTrue();
        try (Socket b = new Socket(loopback, connector.getLocalPort())) {
            await().atMost(Duration.ofSeconds(5)).until(() -> guard.pending() == 1);
            HandTask second = scheduler.onlyLive();

            first.job.run();

            assertThat(scheduler.live()).as("deadline tasks scheduled and not cancelled").containsExactly(second);
            assertThat(guard.pending()).isOne();
        }
    }

    /** A scheduler whose tasks run only when the test runs them. */
    private static final class HandScheduler extends AbstractLifeCycle implements Scheduler {
        private final List<HandTask> tasks = new ArrayList<>();

        @Override
        public synchronized Scheduler.Task schedule(Runnable job, long delay, TimeUnit units) {
            HandTask task = new HandTask(job);
            tasks.add(task);
            return task;
        }

        synchronized List<HandTask> live() {
            return tasks.stream().filter(task -> !task.cancelled).toList();
        }

        HandTask onlyLive() {
            List<HandTask> live = live();
            assertThat(live).as("deadline tasks scheduled and not cancelled").hasSize(1);
            return live.get(0);
        }
    }

    private static final class HandTask implements Scheduler.Task {
        final Runnable job;
        volatile boolean cancelled;

        HandTask(Runnable job) {
            this.job = job;
        }

        @Override
        public boolean cancel() {
            cancelled = true;
            return true;
        }
    }
}
