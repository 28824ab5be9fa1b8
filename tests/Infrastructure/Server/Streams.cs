using Grpc.Core;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Tests;

/// <summary>Runs whole MatchStream calls the way a client does: frames sent while responses are read.</summary>
internal static class Streams
{
    /// <summary>Sends the config and frames, then reads every response until the server ends the call.</summary>
    public static async Task<List<StreamResponse>> RunAsync(VideoMatcher.VideoMatcherClient client, StreamConfig config, IEnumerable<Frame> frames)
    {
        using var timeout = new CancellationTokenSource(Limits.Call);
        using var call = client.MatchStream(cancellationToken: timeout.Token);
        var reading = ReadAllAsync(call.ResponseStream, timeout.Token);
        await call.RequestStream.WriteAsync(new StreamRequest { Config = config }, timeout.Token);
        foreach (var frame in frames)
        {
            await call.RequestStream.WriteAsync(new StreamRequest { Frame = frame }, timeout.Token);
        }

        await call.RequestStream.CompleteAsync();
        return await reading;
    }

    /// <summary>As <see cref="RunAsync"/>, frames numbered from 0; only the pairs.</summary>
    public static async Task<List<PairMatches>> PairsAsync(VideoMatcher.VideoMatcherClient client, StreamConfig config, IEnumerable<Image> images)
    {
        var responses = await RunAsync(client, config, images.Select((image, i) => new Frame { Sequence = (ulong)i, Image = image }));
        return [.. responses.Where(r => r.Pair is not null).Select(r => r.Pair)];
    }

    public static async Task<List<StreamResponse>> ReadAllAsync(IAsyncStreamReader<StreamResponse> stream, CancellationToken cancellationToken)
    {
        var responses = new List<StreamResponse>();
        await foreach (var response in stream.ReadAllAsync(cancellationToken))
        {
            responses.Add(response);
        }

        return responses;
    }
}
