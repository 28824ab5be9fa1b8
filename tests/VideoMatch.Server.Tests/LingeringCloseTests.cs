using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using VideoMatch.Server.Hosting;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>
/// A server that stops (and whose process ends) while a client is still sending: the socket stays open, and what the
/// client sends is read and dropped, until the client stops or <see cref="LingeringClose.Linger"/> passes, so its
/// writes never meet a closed socket (a gRPC client would then report that instead of the status it had not read).
/// </summary>
public sealed class LingeringCloseTests
{
    private static readonly byte[] Goodbye = "the last answers and the status"u8.ToArray();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ServerStopsWhileClientStillSends_ClientFinishesWithoutAReset(bool lingering)
    {
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var app = await StartAsync(lingering, ended);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(Endpoint(app)).DefaultTimeout();
        var received = new byte[Goodbye.Length];
        for (var at = 0; at < received.Length;)
        {
            at += await client.ReceiveAsync(received.AsMemory(at), SocketFlags.None).AsTask().DefaultTimeout();
        }

        // The server stops, and its process ends (its sockets close), while the client still sends: until 300 ms after
        // the server is done with the connection (a gRPC client's request stream writes on until its reader has the
        // status), then it stops sending and stays connected. Timed from the server's end, so load does not change it.
        var stopping = Task.Run(async () =>
        {
            await app.StopAsync();
            await app.DisposeAsync();
        });
        var failure = await Record.ExceptionAsync(async () =>
        {
            while (!ended.Task.IsCompleted)
            {
                await client.SendAsync(new byte[4096], SocketFlags.None);
                await Task.Delay(20);
            }

            for (var until = DateTime.UtcNow.AddMilliseconds(300); DateTime.UtcNow < until;)
            {
                await client.SendAsync(new byte[4096], SocketFlags.None);
                await Task.Delay(20);
            }
        });
        await stopping.DefaultTimeout();

        Assert.Equal(Goodbye, received);
        if (lingering)
        {
            // Stopping waited for the client to finish (or Linger): its writes never met a closed socket.
            Assert.Null(failure);
        }
        else
        {
            // Closed under the client: its next write fails (EPIPE or ECONNRESET), which a gRPC client reports instead of
            // the status it had not read yet.
            Assert.IsType<SocketException>(failure);
        }
    }

    [Fact]
    public async Task ServerEndsTheConnectionItself_ItsFinWaitsForTheClientsFin()
    {
        // As Kestrel ends an HTTP/2 connection whose streams are all done after GOAWAY: the last bytes written, the
        // pending read cancelled, the handler returns. Its client may still be busy with those streams (.NET's HTTP/2
        // client abandons the request body of a stream reset with NO_ERROR after its status), and a FIN in that moment
        // fails them with "the server closed the connection"; it closes the connection itself when it is done.
        var ended = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Use(LingeringClose.Use);
            listen.Run(async connection =>
            {
                await connection.Transport.Output.WriteAsync(Goodbye);
                connection.Transport.Input.CancelPendingRead();
                ended.SetResult(System.Diagnostics.Stopwatch.GetTimestamp());
            });
        }));
        await using var app = builder.Build();
        await app.StartAsync().DefaultTimeout();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(Endpoint(app)).DefaultTimeout();
        var received = new byte[Goodbye.Length];
        for (var at = 0; at < received.Length;)
        {
            at += await client.ReceiveAsync(received.AsMemory(at), SocketFlags.None).AsTask().DefaultTimeout();
        }

        var end = await ended.Task.DefaultTimeout();
        var fin = client.ReceiveAsync(new byte[1].AsMemory(), SocketFlags.None).AsTask();
        var finFirst = await Task.WhenAny(fin, Task.Delay(300)) == fin;
        var sinceEnd = System.Diagnostics.Stopwatch.GetElapsedTime(end);

        // No FIN while the client is busy (unless the linger ran out first on a loaded machine); the client's own FIN
        // ends the wait at once.
        Assert.False(finFirst && sinceEnd < LingeringClose.Linger, $"the server's FIN came {sinceEnd.TotalMilliseconds:F0} ms after it ended the connection, before the client's");
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, await fin.DefaultTimeout());
        Assert.Equal(Goodbye, received);
    }

    private static async Task<WebApplication> StartAsync(bool lingering, TaskCompletionSource ended)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            if (lingering)
            {
                listen.Use(LingeringClose.Use);
            }

            // Writes its last bytes, then ends when the server stops (as HTTP/2 ends a connection at shutdown), without
            // reading what the client sends.
            listen.Run(async connection =>
            {
                await connection.Transport.Output.WriteAsync(Goodbye);
                var stopping = connection.Features.Get<IConnectionLifetimeNotificationFeature>()!.ConnectionClosedRequested;
                await Task.Delay(Timeout.Infinite, stopping).ContinueWith(_ => { }, TaskScheduler.Default);
                ended.SetResult();
            });
        }));
        var app = builder.Build();
        await app.StartAsync().DefaultTimeout();
        return app;
    }

    private static IPEndPoint Endpoint(WebApplication app)
    {
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return new IPEndPoint(IPAddress.Loopback, address.Port);
    }
}
