using VideoMatch.Server;

namespace VideoMatch.Cli.Tests;

/// <summary>The real server on a loopback port (Kestrel, HTTP/2), as a client process would reach it.</summary>
public sealed class LoopbackServer : IAsyncLifetime
{
    public const int ModelWidth = 320;
    public const int ModelHeight = 256;

    private WebApplication? _app;

    public string Address { get; private set; } = "";

    public async Task InitializeAsync()
    {
        _app = ServerApp.Build([
            "--urls", "http://127.0.0.1:0",
            "--Logging:LogLevel:Default", "Warning",
            $"--Inference:EmbeddedWidth={ModelWidth}",
            $"--Inference:EmbeddedHeight={ModelHeight}",
            "--Inference:WarmUp=false",
            "--Metrics:Url=",
        ]);
        await _app.StartAsync();
        Address = _app.Urls.First();
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
