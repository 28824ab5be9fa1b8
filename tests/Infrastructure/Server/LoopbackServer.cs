using Microsoft.AspNetCore.Builder;
using VideoMatch.Server;

namespace VideoMatch.Tests;

/// <summary>
/// The real server on a loopback port (Kestrel, HTTP/2, TLS when configured), as a client process reaches it, with
/// the test-server settings. As a class fixture it starts with those alone; <see cref="StartAsync"/> adds more.
/// </summary>
public sealed class LoopbackServer : IAsyncLifetime, IAsyncDisposable
{
    private readonly bool _https;
    private readonly string[] _settings;
    private WebApplication? _app;

    public LoopbackServer()
        : this(https: false, [])
    {
    }

    private LoopbackServer(bool https, string[] settings) => (_https, _settings) = (https, settings);

    /// <summary>Where it listens, e.g. http://127.0.0.1:40123.</summary>
    public Uri Address => new(Url);

    /// <summary><see cref="Address"/> as text, for command lines.</summary>
    public string Url => App.Urls.First();

    public IServiceProvider Services => App.Services;

    private WebApplication App => _app ?? throw new InvalidOperationException("The loopback server has not been started.");

    /// <summary>Starts a server with the test-server settings and then <paramref name="settings"/> (<c>--Section:Key=value</c>).</summary>
    public static async Task<LoopbackServer> StartAsync(bool https = false, params string[] settings)
    {
        var server = new LoopbackServer(https, settings);
        await server.InitializeAsync();
        return server;
    }

    public async Task InitializeAsync()
    {
        _app = ServerApp.Build(TestServerSettings.Arguments(["--urls", _https ? "https://127.0.0.1:0" : "http://127.0.0.1:0", .. _settings]));
        await _app.StartAsync().WaitAsync(Limits.Call);
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync().WaitAsync(Limits.Call);
            await _app.DisposeAsync();
            _app = null;
        }
    }

    async ValueTask IAsyncDisposable.DisposeAsync() => await DisposeAsync();
}
