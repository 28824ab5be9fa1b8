using VideoMatch.Contracts.V1;

namespace VideoMatch.Client;

/// <summary>One match in the Hugging Face pipeline's shape.</summary>
public readonly record struct KeypointMatch(float X0, float Y0, float X1, float Y1, float Score);

/// <summary>Views over <see cref="Matches"/>.</summary>
public static class MatchList
{
    /// <summary>The matches as records, in the server's order (score, highest first).</summary>
    public static KeypointMatch[] ToArray(Matches matches)
    {
        ArgumentNullException.ThrowIfNull(matches);
        var list = new KeypointMatch[matches.Count];
        for (var i = 0; i < list.Length; i++)
        {
            list[i] = new KeypointMatch(matches.Keypoints0[2 * i], matches.Keypoints0[2 * i + 1],
                matches.Keypoints1[2 * i], matches.Keypoints1[2 * i + 1], matches.Scores[i]);
        }

        return list;
    }
}
