using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>The real server, in memory, with the test-server settings (tests/Infrastructure/test-server.json) and a test's own.</summary>
public sealed class ServerFactory : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings = TestServerSettings.All.ToDictionary(s => s.Key, s => (string?)s.Value);

    private readonly Action<IServiceCollection>? _services;
    private GrpcChannel? _channel;

    public ServerFactory()
        : this(new Dictionary<string, string?>())
    {
    }

    internal ServerFactory(IReadOnlyDictionary<string, string?> settings, Action<IServiceCollection>? services = null)
    {
        _services = services;
        foreach (var (key, value) in settings)
        {
            _settings[key] = value;
        }
    }

    public GrpcChannel Channel => _channel ??= GrpcChannel.ForAddress(Server.BaseAddress, new GrpcChannelOptions
    {
        HttpHandler = Server.CreateHandler(),
        MaxReceiveMessageSize = null,
        MaxSendMessageSize = null,
    });

    /// <summary>A client whose calls get a deadline (<see cref="Limits.Call"/>) when the test gives none.</summary>
    public VideoMatcher.VideoMatcherClient Client => new(Channel.Intercept(new DefaultDeadline()));

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        if (_services is not null)
        {
            builder.ConfigureTestServices(_services);
        }
    }

    protected override void Dispose(bool disposing)
    {
        _channel?.Dispose();
        base.Dispose(disposing);
    }
}
