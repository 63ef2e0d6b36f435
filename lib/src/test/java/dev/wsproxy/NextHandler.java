package dev.wsproxy;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;

/**
 * The handler behind the proxy ({@link ProxyBuilder#nextHandler}): records the path and query of every request it
 * gets and answers {@code 200} with {@code next:<pathQuery>}.
 */
final class NextHandler extends Handler.Abstract {

    final List<String> requests = new CopyOnWriteArrayList<>();

    @Override
    public boolean handle(Request request, Response response, Callback callback) {
        String pathQuery = request.getHttpURI().getPathQuery();
        requests.add(pathQuery);
        response.getHeaders().put("Content-Type", "text/plain;charset=utf-8");
        Content.Sink.write(response, true, "next:" + pathQuery, callback);
        return true;
    }
}
