using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Client;

/// <summary>
/// A VideoMatch server connection. Thread-safe; keep one per process and share it: gRPC multiplexes all calls,
/// streams included, over one HTTP/2 connection.
/// </summary>
public sealed class VideoMatchClient : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly VideoMatcher.VideoMatcherClient _matcher;
    private readonly Health.HealthClient _health;
    private readonly Metadata? _headers;
    private readonly string _model;

    /// <summary>A client for the server(s) in <paramref name="options"/>: one HTTP/2 channel, shared by every call.</summary>
    public VideoMatchClient(VideoMatchClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            // HTTP/2 pings while calls are open: a server that stops answering without closing the connection is noticed.
            KeepAlivePingDelay = options.KeepAlive,
            KeepAlivePingTimeout = options.KeepAliveTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
        };
        if (options.ClientCertificate is not null)
        {
            handler.SslOptions.ClientCertificates = [options.ClientCertificate];
        }

        if (options.AllowUntrustedServerCertificate)
        {
#pragma warning disable CA5359 // An explicit opt-in, documented as for test servers with self-signed certificates.
            handler.SslOptions.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
#pragma warning restore CA5359
        }

        _channel = CreateChannel(options, new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = options.MaxMessageBytes,
            MaxSendMessageSize = options.MaxMessageBytes,
            // A server that comes back (a restarted pod on its address) is reached within 2 s, not after the default
            // backoff of up to 120 s.
            InitialReconnectBackoff = TimeSpan.FromMilliseconds(250),
            MaxReconnectBackoff = TimeSpan.FromSeconds(2),
        });
        _matcher = new VideoMatcher.VideoMatcherClient(_channel);
        _health = new Health.HealthClient(_channel);
        _model = options.Model ?? "";
        if (!string.IsNullOrEmpty(options.ApiKey))
        {
            _headers = new Metadata { { "authorization", $"Bearer {options.ApiKey}" } };
        }
    }

    /// <summary>A client for one server: <c>http://</c> plaintext or <c>https://</c> TLS.</summary>
    public VideoMatchClient(Uri address)
        : this(new VideoMatchClientOptions { Address = address })
    {
    }

    /// <summary>The stream's config, naming this client's model when it names none.</summary>
    private StreamConfig WithModel(StreamConfig? config) =>
        config is { Model.Length: > 0 } || _model.Length == 0 ? config ?? new StreamConfig() : new StreamConfig(config ?? new StreamConfig()) { Model = _model };

    /// <summary>The generated stub, for calls this wrapper does not cover.</summary>
    public VideoMatcher.VideoMatcherClient Stub => _matcher;

    /// <summary>What the server runs: model, input size, the pixel format that costs it least.</summary>
    public async Task<ModelInfo> GetModelInfoAsync(CancellationToken cancellationToken = default) =>
        await _matcher.GetModelInfoAsync(new GetModelInfoRequest { Model = _model }, _headers, cancellationToken: cancellationToken).ConfigureAwait(false);

    /// <summary>Every model the server serves, whether each serves now, and its default.</summary>
    public async Task<ListModelsResponse> ListModelsAsync(CancellationToken cancellationToken = default) =>
        await _matcher.ListModelsAsync(new ListModelsRequest(), _headers, cancellationToken: cancellationToken).ConfigureAwait(false);

    /// <summary>grpc.health.v1 status of the whole server (SERVING once its model is loaded and warmed up).</summary>
    public async Task<HealthCheckResponse.Types.ServingStatus> CheckHealthAsync(CancellationToken cancellationToken = default) =>
        (await _health.CheckAsync(new HealthCheckRequest(), _headers, cancellationToken: cancellationToken).ConfigureAwait(false)).Status;

    /// <summary>Matches two images once.</summary>
    /// <param name="image0">The first image (<see cref="Images"/> builds one from a file, bytes or pixels).</param>
    /// <param name="image1">The second image.</param>
    /// <param name="threshold">Keep matches scoring above this; null for the model's default.</param>
    /// <param name="maxMatches">At most this many, best first; 0 for all.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<MatchPairResponse> MatchAsync(Image image0, Image image1, float? threshold = null, int maxMatches = 0, CancellationToken cancellationToken = default)
    {
        var request = new MatchPairRequest { Image0 = image0, Image1 = image1, MatchThreshold = threshold, MaxMatches = (uint)Math.Max(0, maxMatches) };
        return await MatchAsync(request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Matches two images once, with every option of the request (transform estimation, letterboxing).</summary>
    public async Task<MatchPairResponse> MatchAsync(MatchPairRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Model.Length == 0 && _model.Length > 0)
        {
            request = new MatchPairRequest(request) { Model = _model };
        }

        return await _matcher.MatchPairAsync(request, _headers, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Streams <paramref name="frames"/> and yields one response per frame, in frame order: the matches of
    /// (previous frame, this frame), or a status saying why there are none (first frame, invalid, dropped, failed).
    /// Frames are sent while responses are read, so the server's batching sees a steady flow.
    /// </summary>
    public async IAsyncEnumerable<StreamResponse> StreamAsync(IAsyncEnumerable<Frame> frames, StreamConfig? config = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(frames);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var call = _matcher.MatchStream(_headers, cancellationToken: stop.Token);
        var sending = SendAsync(call.RequestStream, frames, WithModel(config), stop.Token);
        try
        {
            while (await call.ResponseStream.MoveNext(stop.Token).ConfigureAwait(false))
            {
                yield return call.ResponseStream.Current;
            }

            await sending.ConfigureAwait(false);
        }
        finally
        {
            // Leaving early (break, exception) cancels the call and the sender.
            await stop.CancelAsync().ConfigureAwait(false);
            await sending.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A stream driven by the caller: write frames with <see cref="MatchSession.SendAsync"/> and read responses
    /// from <see cref="MatchSession.Responses"/>, for applications whose frames arrive from a camera callback.
    /// </summary>
    public async Task<MatchSession> OpenStreamAsync(StreamConfig? config = null, CancellationToken cancellationToken = default)
    {
        var call = _matcher.MatchStream(_headers, cancellationToken: cancellationToken);
        try
        {
            await call.RequestStream.WriteAsync(new StreamRequest { Config = WithModel(config) }, cancellationToken).ConfigureAwait(false);
            return new MatchSession(call);
        }
        catch
        {
            call.Dispose();
            throw;
        }
    }

    /// <summary>
    /// <see cref="OpenStreamAsync(StreamConfig?, CancellationToken)"/> for a stream that survives its server: frames
    /// sent with <see cref="MatchSession.SendAsync"/> go through
    /// <see cref="StreamAsync(IAsyncEnumerable{Frame}, StreamConfig?, StreamResumeOptions, CancellationToken)"/>, so a
    /// move to another server is as that method makes it (one response per frame, in order; <see cref="StreamResumeOptions.Moved"/>).
    /// <see cref="MatchSession.SendAsync"/> waits while <see cref="StreamResumeOptions.MaxUnanswered"/> frames wait for answers.
    /// </summary>
    public Task<MatchSession> OpenStreamAsync(StreamConfig? config, StreamResumeOptions resume, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(resume);
        var frames = Channel.CreateBounded<Frame>(new BoundedChannelOptions(1) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        return Task.FromResult(MatchSession.Resuming(frames.Writer, stop => StreamAsync(frames.Reader.ReadAllAsync(stop), config, resume, stop), cancellationToken));
    }

    /// <summary>
    /// Streams <paramref name="frames"/> as <see cref="StreamAsync(IAsyncEnumerable{Frame}, StreamConfig?, CancellationToken)"/>
    /// does, and when the server goes away (UNAVAILABLE, its drain, a reset or closed connection) goes on with another
    /// one: it reconnects (<paramref name="resume"/>'s attempts, backoff and deadline; the caller's cancellation always
    /// wins), resumes the stream there (<see cref="StreamConfig.Resume"/>), sends again the frames not yet answered, in
    /// order, and goes on. One response per frame, in order, with no duplicate and no gap; each move is reported to
    /// <see cref="StreamResumeOptions.Moved"/>. When the stream cannot go on, the error names the last frame answered.
    /// </summary>
    public IAsyncEnumerable<StreamResponse> StreamAsync(IAsyncEnumerable<Frame> frames, StreamConfig? config, StreamResumeOptions resume,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(frames);
        ArgumentNullException.ThrowIfNull(resume);
        return new ResumableStream(_matcher, _headers, WithModel(config), resume).RunAsync(frames, cancellationToken);
    }

    /// <summary>Closes the channel; calls still open end.</summary>
    public void Dispose() => _channel.Dispose();

    /// <summary>One address, as it is; several (or a <c>dns:///</c> name), balanced round-robin over what they resolve to.</summary>
    private static GrpcChannel CreateChannel(VideoMatchClientOptions options, GrpcChannelOptions channel)
    {
        var addresses = options.Addresses;
        if (options.Tls && (addresses.Count > 0 || options.Address.Scheme != "dns"))
        {
            throw new ArgumentException("VideoMatchClientOptions.Tls is for a dns:/// address; http:// and https:// addresses say it by their scheme (https:// is TLS).", nameof(options));
        }

        if (addresses.Count == 0 && options.Address.Scheme is "http" or "https")
        {
            return GrpcChannel.ForAddress(options.Address, channel);
        }

        var schemes = addresses.Select(a => a.Scheme).Distinct().ToArray();
        if (schemes.Length > 1 || schemes.Any(s => s is not ("http" or "https")))
        {
            throw new ArgumentException($"Addresses must all be http:// or all https:// (got {string.Join(", ", addresses)}).", nameof(options));
        }

        channel.Credentials = schemes is ["https"] || options.Tls ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure;
        channel.ServiceConfig = new ServiceConfig { LoadBalancingConfigs = { new RoundRobinConfig() } };
        if (addresses.Count == 0)
        {
            // dns:///name:port: every address the name resolves to (re-resolved when a connection fails).
            return GrpcChannel.ForAddress(options.Address, channel);
        }

        BalancerAddress[] servers = [.. addresses.Select(a => new BalancerAddress(a.Host, a.Port))];
        channel.ServiceProvider = new Resolvers(new StaticResolverFactory(_ => servers));
        return GrpcChannel.ForAddress("static:///videomatch", channel);
    }

    /// <summary>What the channel asks its service provider for: the resolver of the static address list.</summary>
    private sealed class Resolvers(ResolverFactory factory) : IServiceProvider
    {
        public object? GetService(Type serviceType) =>
            serviceType == typeof(IEnumerable<ResolverFactory>) ? new[] { factory } : serviceType == typeof(ResolverFactory) ? factory : null;
    }

    private static async Task SendAsync(IClientStreamWriter<StreamRequest> requests, IAsyncEnumerable<Frame> frames, StreamConfig config, CancellationToken cancellationToken)
    {
        await requests.WriteAsync(new StreamRequest { Config = config }, cancellationToken).ConfigureAwait(false);
        await foreach (var frame in frames.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            await requests.WriteAsync(new StreamRequest { Frame = frame }, cancellationToken).ConfigureAwait(false);
        }

        await requests.CompleteAsync().ConfigureAwait(false);
    }
}

/// <summary>
/// An open stream: one MatchStream call, or with <see cref="StreamResumeOptions"/> a stream that goes on on another
/// server when its server stops. Not thread-safe for sending: send from one task at a time.
/// </summary>
public sealed class MatchSession : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<StreamRequest, StreamResponse>? _call;
    private readonly ChannelWriter<Frame>? _frames;
    private readonly Channel<StreamResponse>? _responses;
    private readonly CancellationTokenSource? _stop;
    private readonly Task? _driving;

    internal MatchSession(AsyncDuplexStreamingCall<StreamRequest, StreamResponse> call) => _call = call;

    private MatchSession(ChannelWriter<Frame> frames, Func<CancellationToken, IAsyncEnumerable<StreamResponse>> stream, CancellationToken cancellationToken)
    {
        _frames = frames;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // Bounded: a caller that does not read holds the stream back, as HTTP/2 flow control does a plain call.
        _responses = Channel.CreateBounded<StreamResponse>(new BoundedChannelOptions(1) { SingleReader = true, SingleWriter = true });
        // Started now, not at the first read: frames sent before anyone reads still go out.
        _driving = DriveAsync(stream(_stop.Token), frames, _responses.Writer, _stop.Token);
    }

    internal static MatchSession Resuming(ChannelWriter<Frame> frames, Func<CancellationToken, IAsyncEnumerable<StreamResponse>> stream, CancellationToken cancellationToken) =>
        new(frames, stream, cancellationToken);

    /// <summary>Responses in frame order, until <see cref="CompleteAsync"/> has been called and all are in.</summary>
    public IAsyncEnumerable<StreamResponse> Responses => _call?.ResponseStream.ReadAllAsync() ?? _responses!.Reader.ReadAllAsync();

    /// <summary>Sends a frame; waits while HTTP/2 flow control holds it (the server is behind).</summary>
    public Task SendAsync(Frame frame, CancellationToken cancellationToken = default) =>
        _call is not null ? _call.RequestStream.WriteAsync(new StreamRequest { Frame = frame }, cancellationToken) : SendResumingAsync(frame, cancellationToken);

    /// <summary>No more frames; the server answers what it has and ends the call.</summary>
    public Task CompleteAsync()
    {
        if (_call is not null)
        {
            return _call.RequestStream.CompleteAsync();
        }

        _frames!.TryComplete();
        return Task.CompletedTask;
    }

    /// <summary>Ends the call (cancelling it if it is still open).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_call is not null)
        {
            _call.Dispose();
            return;
        }

        _frames!.TryComplete();
        await _stop!.CancelAsync().ConfigureAwait(false);
        await _driving!.ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task SendResumingAsync(Frame frame, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(frame);
        try
        {
            await _frames!.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException e)
        {
            // The stream could not go on (the error names the last frame answered), or CompleteAsync was called.
            throw e.InnerException ?? new InvalidOperationException("The stream was completed: no more frames can be sent.", e);
        }
    }

    private static async Task DriveAsync(IAsyncEnumerable<StreamResponse> stream, ChannelWriter<Frame> frames, ChannelWriter<StreamResponse> responses,
        CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var response in stream.WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                await responses.WriteAsync(response, cancellationToken).ConfigureAwait(false);
            }

            frames.TryComplete();
            responses.TryComplete();
        }
#pragma warning disable CA1031 // Not lost: the reader of Responses gets it.
        catch (Exception e)
#pragma warning restore CA1031
        {
            // A send waiting for room fails with the same error.
            frames.TryComplete(e);
            responses.TryComplete(e);
        }
    }
}

/// <summary>Builds <see cref="Image"/> messages.</summary>
public static class Images
{
    /// <summary>An encoded image file (JPEG or PNG, told apart by its first bytes).</summary>
    public static Image FromFile(string path) => Encoded(File.ReadAllBytes(path), path);

    /// <summary>JPEG or PNG bytes, told apart by their signature.</summary>
    public static Image Encoded(byte[] data, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var encoding = data is [0xFF, 0xD8, ..] ? ImageEncoding.Jpeg
            : data is [0x89, 0x50, 0x4E, 0x47, ..] ? ImageEncoding.Png
            : throw new ArgumentException($"{name ?? "The image"} is neither JPEG nor PNG (by its first bytes).", nameof(data));
        return new Image { Encoded = new EncodedImage { Encoding = encoding, Data = ByteString.CopyFrom(data) } };
    }

    /// <summary>Raw pixels; copies <paramref name="pixels"/>. <paramref name="rowStride"/> 0 means tightly packed.</summary>
    public static Image Raw(PixelFormat format, int width, int height, ReadOnlySpan<byte> pixels, int rowStride = 0) => new()
    {
        Raw = new RawImage { Format = format, Width = (uint)width, Height = (uint)height, RowStride = (uint)rowStride, Data = ByteString.CopyFrom(pixels) },
    };

    /// <summary>Raw pixels without a copy: the caller must not change <paramref name="pixels"/> until the message is sent.</summary>
    public static Image RawNoCopy(PixelFormat format, int width, int height, ReadOnlyMemory<byte> pixels, int rowStride = 0) => new()
    {
        Raw = new RawImage { Format = format, Width = (uint)width, Height = (uint)height, RowStride = (uint)rowStride, Data = UnsafeByteOperations.UnsafeWrap(pixels) },
    };

}
