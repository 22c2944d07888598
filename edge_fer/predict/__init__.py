"""``edge-fer predict``: faces found in photos and video, classified by any artifact."""
