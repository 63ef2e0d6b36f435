package dev.wsproxy.benchmark;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.eclipse.jetty.client.HttpClient;
import org.eclipse.jetty.http.HttpCookieStore;
import org.eclipse.jetty.io.ArrayByteBufferPool;
import org.eclipse.jetty.io.ByteBufferPool;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.util.thread.ScheduledExecutorScheduler;
import org.eclipse.jetty.util.thread.Scheduler;
import org.eclipse.jetty.websocket.core.Configuration;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.client.CoreClientUpgradeRequest;
import org.eclipse.jetty.websocket.core.client.WebSocketCoreClient;

/**
 * The generator's WebSocket client: Jetty's core client (frames, no message assembly, no String decoding), one
 * {@link HttpClient} per local source address, all sharing one thread pool, scheduler and buffer pool.
 *
 * <p>Several source addresses ({@code 127.0.0.2}, {@code 127.0.0.3}, ...) multiply the ephemeral ports available
 * when 10,000 connections are held open; connections are spread over them in turn.
 */
final class LoadClient implements AutoCloseable {

    /** Read buffer and frame size of the client sessions; outgoing frames may be larger (one 1 MiB frame is sent). */
    static final int FRAME_BUFFER_SIZE = 64 * 1024;
    static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);

    private final QueuedThreadPool threads;
    private final Scheduler scheduler;
    private final ByteBufferPool buffers;
    private final List<HttpClient> httpClients = new ArrayList<>();
    private final List<WebSocketCoreClient> clients = new ArrayList<>();
    private final AtomicInteger next = new AtomicInteger();
    private final Configuration.ConfigurationCustomizer configuration = new Configuration.ConfigurationCustomizer();

    /** A client bound to {@code sourceAddresses} in turn, or to none (the kernel picks) when the list is empty. */
    LoadClient(List<String> sourceAddresses) throws Exception {
        threads = new QueuedThreadPool();
        threads.setName("load");
        threads.start();
        ScheduledExecutorScheduler timer = new ScheduledExecutorScheduler("load-timer", true);
        timer.start();
        scheduler = timer;
        buffers = new ArrayByteBufferPool();
        configuration.setIdleTimeout(Duration.ofHours(1));
        configuration.setInputBufferSize(FRAME_BUFFER_SIZE);
        configuration.setMaxFrameSize(FRAME_BUFFER_SIZE);
        configuration.setAutoFragment(true);
        List<String> sources = sourceAddresses.isEmpty() ? Collections.singletonList(null) : sourceAddresses;
        for (String source : sources) {
            HttpClient http = new HttpClient();
            http.setName("load-" + (source == null ? "any" : source));
            http.setExecutor(threads);
            http.setScheduler(scheduler);
            http.setByteBufferPool(buffers);
            http.setFollowRedirects(false);
            http.setHttpCookieStore(new HttpCookieStore.Empty());
            http.setUserAgentField(null);
            http.setConnectTimeout(CONNECT_TIMEOUT.toMillis());
            http.setIdleTimeout(Duration.ofHours(1).toMillis());
            http.setMaxConnectionsPerDestination(65_536);
            http.setMaxRequestsQueuedPerDestination(65_536);
            if (source != null) {
                http.setBindAddress(new InetSocketAddress(source, 0));
            }
            http.start();
            WebSocketCoreClient client = new WebSocketCoreClient(http, null);
            client.start();
            httpClients.add(http);
            clients.add(client);
        }
    }

    Scheduler scheduler() {
        return scheduler;
    }

    /** Runs {@code task} on the client's thread pool. */
    void execute(Runnable task) {
        threads.execute(task);
    }

    /** Starts a WebSocket handshake with {@code uri}; the future completes after {@code handler}'s {@code onOpen}. */
    CompletableFuture<CoreSession> connect(URI uri, FrameHandler handler) {
        WebSocketCoreClient client = clients.get(Math.floorMod(next.getAndIncrement(), clients.size()));
        CoreClientUpgradeRequest request = CoreClientUpgradeRequest.from(client, uri, handler);
        request.timeout(CONNECT_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        request.setConfiguration(configuration);
        try {
            return client.connect(request);
        } catch (IOException e) {
            return CompletableFuture.failedFuture(e);
        }
    }

    @Override
    public void close() throws IOException {
        try {
            for (WebSocketCoreClient client : clients) {
                client.stop();
            }
            for (HttpClient http : httpClients) {
                http.stop();
            }
            ((ScheduledExecutorScheduler) scheduler).stop();
            threads.stop();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("stop interrupted", e);
        } catch (Exception e) {
            throw new IOException("stop: " + e, e);
        }
    }
}
